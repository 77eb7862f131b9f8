"""Hard routing's pools: blocks per container type, each from its own provider, scaled on its own type's tasks."""

import shlex

import pytest

from compute_endpoint.config import Config, ConfigError, Engine, Strategy, load_yaml_text
from compute_endpoint.containers.registry import parse_registry
from compute_endpoint.interchange.settings import InterchangeSettings
from compute_endpoint.paths import EndpointDir
from compute_endpoint.protocol import ControlAction
from compute_endpoint.providers.typed import TypedBlocks, hard_routed, pool_types

from ..support.scripted_provider import ScriptedProvider

PY = "podman:localhost/py:1"
HPC = "charliecloud:/var/tmp/hpc"


def make_typed(tmp_path, init_blocks=0) -> TypedBlocks:
    engine = Engine(provider=ScriptedProvider(init_blocks=init_blocks), max_workers_per_node=2, strategy="simple",
                    scheduler_mode="hard", job_status_kwargs=Strategy(strategy_period=1, status_period=1e-6))
    config = Config(engine=engine)
    config.container_registry = parse_registry({"py": PY, "hpc": HPC, "py-again": PY})
    blocks = TypedBlocks.batch(EndpointDir("ep", tmp_path / "config", tmp_path / "state"), config,
                               "tcp://10.0.0.1:5000")
    for pool in blocks.pools.values():
        pool.begin()
    return blocks


def worker_type(command: str) -> str:
    given = [arg.partition("=")[2] for arg in shlex.split(command) if arg.startswith("--worker-type=")]
    return given[0] if given else "RAW"  # (options at their default are left out)


def test_each_listed_type_gets_a_pool_of_its_own_provider_and_raw_comes_first(tmp_path):
    blocks = make_typed(tmp_path, init_blocks=1)
    assert list(blocks.pools) == ["RAW", HPC, PY]  # two aliases of one image: one pool
    providers = [pool.provider for pool in blocks.pools.values()]
    assert len({id(p) for p in providers}) == 3
    for ctype, pool in blocks.pools.items():
        (command,) = pool.provider.commands
        assert worker_type(command) == ctype
    ids = [b["block_id"] for b in blocks.describe()["blocks"]]
    assert ids == ["raw-0", "c1-0", "c2-0"]
    assert {b["container_type"] for b in blocks.describe()["blocks"]} == {"RAW", HPC, PY}


def test_a_type_with_waiting_tasks_gets_blocks_and_the_others_do_not(tmp_path):
    blocks = make_typed(tmp_path)
    blocks.scale(5, {PY: 5})
    for pool in blocks.pools.values():
        pool.tick(pool.strategy.idle_since or 0.0)
    submitted = {ctype: len(pool.provider.commands) for ctype, pool in blocks.pools.items()}
    assert submitted == {"RAW": 0, HPC: 0, PY: 3}  # 5 tasks at 2 slots a block


def test_managers_are_counted_in_the_pool_of_the_one_type_they_serve(tmp_path):
    blocks = make_typed(tmp_path, init_blocks=1)
    managers = [{"manager_id": "m1", "block_id": "c2-0", "tasks": 1, "container_types": [PY]},
                {"manager_id": "m2", "block_id": "raw-0", "tasks": 0, "container_types": ["RAW"]}]
    blocks.observe(managers)
    assert blocks.pools[PY].blocks["c2-0"].busy
    assert blocks.pools["RAW"].blocks["raw-0"].managers == ["m2"]
    assert not blocks.pools[HPC].blocks["c1-0"].managers


def test_when_one_types_blocks_cannot_start_only_that_types_tasks_fail(tmp_path):
    blocks = make_typed(tmp_path)
    blocks.pools[HPC].provider.refuse_submit = "sbatch: error: invalid partition specified: gpu"
    blocks.scale(1, {HPC: 1})
    for pool in blocks.pools.values():
        pool.tick(0.0)
    (request,) = blocks.take_requests()
    assert request.action == ControlAction.FAIL_QUEUED and request.container_types == [HPC]
    assert f"for {HPC} tasks" in request.detail and "invalid partition" in request.detail
    assert blocks.describe()["degraded"].startswith(f"{HPC}: every block failed")


def test_hard_routing_needs_no_router_in_the_interchange_and_soft_does(tmp_path):
    text = """
containers: {py: "podman:localhost/py:1"}
engine: {scheduler_mode: %s}
"""
    hard = load_yaml_text(text % "hard", "config.yaml")
    soft = load_yaml_text(text % "soft", "config.yaml")
    assert hard_routed(hard) and not hard_routed(soft)
    assert pool_types(hard) == ["RAW", PY]
    route = [InterchangeSettings.from_config(c, "ipc://e", "ipc://m", 0).routing for c in (hard, soft)]
    assert route == ["", "soft"]


def test_worker_mode_no_container_still_refuses_a_list(tmp_path):
    with pytest.raises(ConfigError, match="no_container"):
        load_yaml_text('containers: {py: "podman:img"}\nengine: {worker_mode: no_container, scheduler_mode: hard}',
                       "config.yaml")
