"""Blocks from a Parsl provider, driven tick by tick with a scripted scheduler: every case the strategy meets."""

import json
import os
import shlex
import time

import pytest
from parsl.jobs.states import JobState

from compute_endpoint.config import Config, Engine, Strategy
from compute_endpoint.endpoint.components import UnitComponents
from compute_endpoint.errors import EndpointError
from compute_endpoint.paths import EndpointDir, write_json
from compute_endpoint.protocol import ControlAction
from compute_endpoint.providers.batch import BatchBlocks

from ..support.scripted_provider import ScriptedProvider

IDLE = 10.0


def at(seconds: float) -> float:
    """A tick this many seconds from now, on the clock the blocks read (the daemon's loop observes in real time)."""
    return time.monotonic() + seconds


def make_blocks(tmp_path, strategy="simple", max_held_time=None, drain_period=None, status_period=1e-6,
                **provider) -> BatchBlocks:
    engine = Engine(provider=ScriptedProvider(**provider), max_workers_per_node=2, strategy=strategy,
                    drain_period=drain_period,
                    job_status_kwargs=Strategy(max_idletime=IDLE, strategy_period=1, status_period=status_period,
                                               max_held_time=max_held_time))
    blocks = BatchBlocks(EndpointDir("ep", tmp_path / "config", tmp_path / "state"), Config(engine=engine),
                         "tcp://10.0.0.1:5000")
    blocks.begin()
    return blocks


def run(blocks: BatchBlocks, job: str, managers: int = 1, tasks: int = 0) -> None:
    """The scheduler starts the job and its managers register with the interchange."""
    blocks.provider.set(job, JobState.RUNNING)
    block_id = next(b.block_id for b in blocks.blocks.values() if b.job_id == job)
    connected = [{"manager_id": f"block-{block_id}.node{n}", "block_id": block_id, "tasks": tasks,
                  "draining": False} for n in range(managers)]
    others = [m for m in blocks._seen if m["block_id"] != block_id] if hasattr(blocks, "_seen") else []
    blocks._seen = others + connected
    blocks.observe(blocks._seen)


def leave(blocks: BatchBlocks, block_id: str) -> None:
    blocks._seen = [m for m in blocks._seen if m["block_id"] != block_id]
    blocks.observe(blocks._seen)


def states(blocks: BatchBlocks) -> dict[str, str]:
    return {b["block_id"]: b["state"] for b in blocks.describe()["blocks"]}


def test_init_blocks_are_submitted_with_the_manager_command_line(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=2)
    provider = blocks.provider
    assert len(provider.commands) == 2
    argv = shlex.split(provider.commands[0])
    assert argv[1:3] == ["-m", "compute_endpoint.manager"]
    assert "--block-id=0" in argv and "--interchange=tcp://10.0.0.1:5000" in argv
    assert f"--keys-dir={tmp_path / 'state' / 'keys'}" in argv
    assert provider.script_dir == str(tmp_path / "state" / "blocks")
    blocks.tick(at(0))
    assert json.loads((tmp_path / "state/blocks/jobs.json").read_text())["jobs"] == ["100", "101"]


def test_waiting_tasks_add_blocks_up_to_max_blocks(tmp_path):
    blocks = make_blocks(tmp_path, max_blocks=3)
    blocks.scale(5)  # 2 slots a block: 3 blocks
    blocks.tick(at(0))
    assert len(blocks.provider.live()) == 3
    blocks.scale(500)
    blocks.tick(at(1))
    assert len(blocks.provider.live()) == 3, "never above max_blocks, pending jobs included"


def test_parallelism_provisions_a_share_of_the_waiting_tasks(tmp_path):
    blocks = make_blocks(tmp_path, max_blocks=10, parallelism=0.5)
    blocks.scale(8)  # half of 8 tasks at 2 slots a block
    blocks.tick(at(0))
    assert len(blocks.provider.live()) == 2


def test_simple_removes_blocks_after_max_idletime_draining_managers_first(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=3, min_blocks=1)
    provider = blocks.provider
    run(blocks, "100")
    run(blocks, "101")  # 102 never starts
    blocks.scale(0)
    blocks.tick(at(0))
    blocks.tick(at(IDLE - 1))
    assert not provider.cancelled and not blocks.take_requests(), "nothing goes before max_idletime"
    blocks.tick(at(IDLE + 1))
    assert provider.cancelled == ["102"], "the block no manager reached goes at once"
    (drain,) = blocks.take_requests()
    assert drain.action == ControlAction.DRAIN_MANAGERS and len(drain.manager_ids) == 1
    draining = drain.manager_ids[0].split(".")[0].removeprefix("block-")
    assert states(blocks)[draining] == "DRAINING"
    blocks.tick(at(IDLE + 2))
    assert provider.cancelled == ["102"], "not cancelled while its manager still finishes"
    leave(blocks, draining)
    blocks.tick(at(IDLE + 3))
    assert len(provider.cancelled) == 2, "cancelled once its manager left"
    blocks.tick(at(IDLE + 4))
    assert states(blocks)[draining] == "SCALED_IN"
    assert len(provider.live()) == 1, "down to min_blocks"


def test_simple_keeps_every_block_while_any_task_waits(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=3)
    for job in ("100", "101", "102"):
        run(blocks, job)
    blocks.scale(1)
    for now in (0, IDLE * 3):
        blocks.tick(at(now))
    assert not blocks.provider.cancelled and not blocks.take_requests()


def test_htex_auto_scale_removes_only_blocks_idle_for_max_idletime(tmp_path):
    blocks = make_blocks(tmp_path, strategy="htex_auto_scale", init_blocks=3)
    run(blocks, "100", tasks=2)  # busy
    run(blocks, "101")
    run(blocks, "102")
    blocks.scale(2)
    blocks.tick(at(0))
    assert not blocks.take_requests()
    blocks.tick(at(IDLE + 1))
    drained = [m for request in blocks.take_requests() for m in request.manager_ids]
    assert sorted(m.split(".")[0] for m in drained) == ["block-1", "block-2"]


def test_strategy_none_submits_init_blocks_only(tmp_path):
    blocks = make_blocks(tmp_path, strategy="none", init_blocks=1)
    blocks.scale(100)
    blocks.tick(at(0))
    blocks.tick(at(IDLE * 2))
    assert len(blocks.provider.commands) == 1 and not blocks.provider.cancelled


def test_a_job_that_ends_before_its_manager_connects_failed_with_its_output(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=1)
    stderr = tmp_path / "job.stderr"
    stderr.write_text("worker_init: line 1: module: command not found\n")
    blocks.provider.set("100", JobState.COMPLETED, stderr_path=str(stderr))
    blocks.scale(3)
    blocks.tick(at(0))
    (block,) = blocks.describe()["blocks"]
    assert block["state"] == "FAILED"
    assert "ended before any manager connected" in block["failure"] and "COMPLETED" in block["failure"]
    assert "module: command not found" in block["failure"]
    (fail,) = blocks.take_requests()
    assert fail.action == ControlAction.FAIL_QUEUED and "module: command not found" in fail.detail
    assert "every block failed" in blocks.describe()["degraded"]


def test_after_every_block_failed_it_retries_with_back_off_and_recovers(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=2)
    for job in ("100", "101"):
        blocks.provider.set(job, JobState.FAILED, message="invalid account")
    blocks.scale(3)
    blocks.tick(at(0))  # two failures: max(1, init_blocks) of them
    assert blocks.describe()["degraded"] and len(blocks.take_requests()) == 1
    submitted = len(blocks.provider.commands)
    blocks.tick(at(0))
    assert len(blocks.provider.commands) == submitted, "back-off: not on the very next tick"
    blocks.tick(blocks.retry_at + 1)
    assert len(blocks.provider.commands) > submitted, "retried once the back-off passed"
    job = blocks.provider.live()[0]
    run(blocks, job)
    assert blocks.describe()["degraded"] is None and blocks.failures_in_a_row == 0


def test_one_failed_block_among_several_is_reported_but_not_degraded(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=2)
    run(blocks, "100")
    blocks.provider.set("101", JobState.FAILED)
    blocks.tick(at(0))
    assert states(blocks)["1"] == "FAILED"
    assert blocks.describe()["degraded"] is None and not blocks.take_requests()


def test_a_refused_submission_is_a_failed_block_naming_the_schedulers_words(tmp_path):
    blocks = make_blocks(tmp_path)
    blocks.provider.refuse_submit = "sbatch: error: invalid partition specified: nope"
    blocks.scale(1)
    blocks.tick(at(0))
    (block,) = blocks.describe()["blocks"]
    assert block["state"] == "FAILED" and "invalid partition specified: nope" in block["failure"]
    (fail,) = blocks.take_requests()
    assert "invalid partition" in fail.detail


def test_held_jobs_count_against_max_blocks_and_are_replaced_after_max_held_time(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=1, max_blocks=1, max_held_time=30)
    blocks.provider.set("100", JobState.HELD)
    blocks.scale(10)
    blocks.tick(at(0))
    assert states(blocks) == {"0": "HELD"} and len(blocks.provider.commands) == 1
    blocks.tick(at(31))
    assert blocks.provider.cancelled == ["100"]
    assert "held by the scheduler" in blocks.describe()["blocks"][0]["failure"]
    blocks.tick(at(32))
    assert len(blocks.provider.live()) == 1 and len(blocks.provider.commands) == 2, "replaced"


def test_a_block_killed_after_its_managers_ran_is_replaced_not_failed(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=1)
    run(blocks, "100", tasks=2)
    blocks.provider.set("100", JobState.TIMEOUT)
    blocks.scale(2)
    blocks.tick(at(0))
    assert states(blocks)["0"] == "TIMEOUT" and blocks.failures_in_a_row == 0
    blocks.tick(at(1))
    assert len(blocks.provider.live()) == 1, "a new block for the waiting tasks"


def test_managers_draining_for_drain_period_free_their_block_slot(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=1, max_blocks=1, drain_period=60)
    assert "--drain-after=60" in shlex.split(blocks.provider.commands[0])
    run(blocks, "100", tasks=1)
    blocks.observe([{"manager_id": "block-0.node0", "block_id": "0", "tasks": 1, "draining": True}])
    blocks.scale(3)
    blocks.tick(at(0))
    assert states(blocks)["0"] == "DRAINING"
    assert len(blocks.provider.live()) == 2, "its replacement starts while it finishes"


def test_jobs_left_by_a_crashed_run_are_cancelled_at_start(tmp_path):
    (tmp_path / "state" / "blocks").mkdir(parents=True)
    (tmp_path / "state/blocks/jobs.json").write_text(json.dumps({"provider": "ScriptedProvider", "jobs": ["77"]}))
    blocks = make_blocks(tmp_path)
    assert blocks.provider.cancelled == ["77"]


def test_stop_cancels_every_job(tmp_path):
    blocks = make_blocks(tmp_path, init_blocks=2)
    blocks.stop(1)
    assert sorted(blocks.provider.cancelled) == ["100", "101"]
    assert not (tmp_path / "state/blocks/jobs.json").exists()


def test_jobs_never_inherit_the_broker_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPUTE_CLIENT_SECRET", "hunter2")
    make_blocks(tmp_path)
    assert "COMPUTE_CLIENT_SECRET" not in os.environ, "a job gets the environment it was submitted from"


def test_the_scheduler_is_polled_at_the_providers_interval_and_at_once_when_managers_leave(tmp_path):
    blocks = make_blocks(tmp_path, status_period=None, init_blocks=1)
    provider = blocks.provider
    provider.polling_interval = 30
    blocks.status_period = 30.0  # (read from the provider when the blocks are made)
    run(blocks, "100")
    blocks.tick(at(0))
    blocks.tick(at(1))
    blocks.tick(at(2))
    assert provider.status_calls == 1, "once per status_polling_interval"
    leave(blocks, "0")
    blocks.tick(at(3))
    assert provider.status_calls == 2, "its managers left: the job has likely ended"


def unit_components(tmp_path, worker_port: int | None, recorded_port: int | None = None):
    """The packaged appliance's daemon (interchange and managers are systemd units) with a batch provider."""
    ep = EndpointDir("hpc", tmp_path / "config", tmp_path / "state")
    if recorded_port:
        write_json(ep.interchange_record, {"pid": 1, "worker_address": "10.0.0.1", "worker_port": recorded_port})
    engine = Engine(provider=ScriptedProvider(init_blocks=1), max_workers_per_node=2, address="10.0.0.1",
                    worker_port=worker_port)
    return UnitComponents(ep, Config(engine=engine))


def test_under_systemd_the_daemon_submits_blocks_for_the_interchange_unit(tmp_path):
    parts = unit_components(tmp_path, worker_port=None, recorded_port=54500)
    parts.blocks.begin()
    argv = shlex.split(parts.blocks.provider.commands[0])
    assert "--interchange=tcp://10.0.0.1:54500" in argv
    assert parts.describe_blocks()["provider"] == "ScriptedProvider"
    parts.stop(timeout=1)
    assert parts.blocks.provider.cancelled == ["100"]


def test_under_systemd_a_batch_provider_without_a_manager_port_is_refused(tmp_path):
    with pytest.raises(EndpointError, match="set engine.worker_port"):
        unit_components(tmp_path, worker_port=None)
