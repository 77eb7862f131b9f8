"""LocalProvider's blocks: real manager processes started, replaced and scaled by the load."""

import os
import signal
import time

import pytest

from compute_endpoint.config import load_yaml_text
from compute_endpoint.paths import EndpointDir
from compute_endpoint.procs import pid_alive
from compute_endpoint.providers.local import LocalBlocks

from ..support.broker import wait_for

CONFIG = """
engine:
  max_workers_per_node: 1
  prefetch_capacity: 1
  job_status_kwargs: {strategy_period: 0.01, max_idletime: 0.2}
  provider: {type: LocalProvider, init_blocks: 1, min_blocks: 1, max_blocks: 3}
"""


@pytest.fixture
def blocks(tmp_path):
    config = load_yaml_text(CONFIG, "config.yaml")
    # Nothing listens there: the managers keep trying, which is all these tests need of them.
    blocks = LocalBlocks(EndpointDir("ep", tmp_path, tmp_path), config, f"ipc://{tmp_path}/nobody-home.sock",
                         dict(os.environ))
    blocks.start()
    yield blocks
    blocks.stop(5)


def scale(blocks: LocalBlocks, outstanding: int) -> None:
    time.sleep(0.02)  # past the strategy period
    blocks.scale(outstanding)


def test_init_blocks_start_and_each_manager_runs_the_manager_command(blocks):
    (block,) = blocks.blocks.values()
    assert block.manager_id.endswith(".ep.block-0")
    argv = block.process.args
    assert argv[1:3] == ["-m", "compute_endpoint.manager"]
    assert f"--manager-id={block.manager_id}" in argv


def test_outstanding_tasks_add_blocks_up_to_max_blocks(blocks):
    scale(blocks, outstanding=5)  # 2 slots per block: 3 blocks wanted
    assert len(blocks.blocks) == 3
    scale(blocks, outstanding=50)
    assert len(blocks.blocks) == 3, "never above max_blocks"


def test_idle_blocks_are_removed_after_max_idletime_down_to_min_blocks(blocks):
    scale(blocks, outstanding=5)
    scale(blocks, outstanding=0)
    assert len([b for b in blocks.blocks.values() if not b.stopping]) == 3, "not before max_idletime"
    time.sleep(0.25)
    scale(blocks, outstanding=0)
    assert len([b for b in blocks.blocks.values() if not b.stopping]) == 1
    wait_for(lambda: (blocks.poll(), len(blocks.blocks) == 1)[1], timeout=20, what="idle managers to leave")
    assert blocks.replaced == 0, "managers asked to stop are not replaced"


def test_a_manager_that_dies_is_replaced_under_its_block_id(blocks):
    (block,) = blocks.blocks.values()
    os.kill(block.process.pid, signal.SIGKILL)
    wait_for(lambda: (blocks.poll(), blocks.replaced == 1)[1], timeout=10, what="the replacement")
    (replacement,) = blocks.blocks.values()
    assert replacement.manager_id == block.manager_id and replacement.process.pid != block.process.pid
    assert pid_alive(replacement.process.pid)
