"""docker (the engine), Apptainer, Singularity and Shifter, which this host cannot have, through the shim that
stands in for each (tests/support/runtime_shim.py): it takes each runtime's syntax, refuses what the runtime
refuses, and runs the command on this host. Per-function workers under a real manager, and whole endpoints'
managers (engine.container_type); tasks report the runtime and image the shim ran them under."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from compute_endpoint import serialize
from compute_endpoint.manager.settings import ManagerSettings
from compute_endpoint.procs import pid_alive

from ..support.broker import wait_for
from ..support.runtime_shim import RUNTIMES, calls, docker_containers, install, live_processes
from .test_container_workers import registration, run_tasks, stop, task


def shim_view():
    """Where the task ran, as the shim told its command (it runs on this host, so only these tell)."""
    import os
    import sys
    return {"runtime": os.environ.get("CE_SHIM_RUNTIME"), "image": os.environ.get("CE_SHIM_IMAGE"),
            "container": os.environ.get("CE_SHIM_CONTAINER"), "python": sys.executable, "pid": os.getpid()}


@pytest.fixture
def shims(tmp_path, monkeypatch):
    """The shims first on PATH, for this test and what it starts; the state directory where they record calls.
    Whatever still runs under them afterwards is killed (the tests check that nothing does)."""
    state = tmp_path / "shim"
    for key, value in install(tmp_path / "bin", state).items():
        monkeypatch.setenv(key, value)
    yield state
    for pid in live_processes(state):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def image_for(runtime: str, tmp_path) -> str:
    if runtime in ("apptainer", "singularity"):  # a path that must exist, as a SIF file would
        sif = tmp_path / "worker.sif"
        sif.write_bytes(b"stands in for a SIF image: the shim runs commands on the host")
        return str(sif)
    return "docker:example/worker:1" if runtime == "shifter" else "example/worker:1"


def assert_runs_in(argv: list[str], runtime: str, image: str, command: list[str]) -> None:
    """argv (as the shim recorded it) runs ``command`` in ``image`` under ``runtime``, in that runtime's syntax."""
    if runtime == "docker":
        at = argv.index(image)
        assert argv[:2] == ["docker", "run"] and {"--rm", "--init"} <= set(argv[:at])
    elif runtime == "shifter":
        assert argv[:2] == ["shifter", f"--image={image}"]
        at = argv.index("--")
    else:
        assert argv[:2] == [runtime, "exec"]
        at = argv.index(image)
    assert argv[at + 1:at + 1 + len(command)] == command, argv


@pytest.mark.parametrize("runtime", ["apptainer", "singularity", "shifter"])  # (docker: refused, see unit tests)
def test_per_function_workers_run_their_tasks_under_the_runtime(runtime, shims, interchange, tmp_path):
    sock, address = interchange
    image = image_for(runtime, tmp_path)
    ctype = f"{runtime}:{image}"
    settings = ManagerSettings(interchange=address, workers=1, manager_id=f"m-{uuid.uuid4().hex[:6]}",
                               heartbeat_period=0.5, log_file=tmp_path / "manager.log", worker_type="any",
                               worker_containers=json.dumps({ctype: {"runtime": runtime, "image": image}}),
                               container_python=sys.executable)  # the "image" is this host: this venv's Python
    manager = subprocess.Popen(settings.command())
    try:
        identity, reg = registration(sock)
        assert reg.container_types == ["RAW", ctype]
        tasks = [task(ctype, fn=shim_view) for _ in range(2)]
        results = run_tasks(sock, identity, tasks, seq=1, timeout=30)
        for result in results.values():
            assert result.error_kind is None, f"{result.error_message}\n{(tmp_path / 'manager.log').read_text()}"
        views = [serialize.load(results[t.task_id].payload) for t in tasks]
        assert {(v["runtime"], v["image"], v["python"]) for v in views} == {(runtime, image, sys.executable)}
        assert len({v["pid"] for v in views}) == 1, "one worker, warm for the second task"
        (argv,) = calls(shims, runtime)
        assert_runs_in(argv, runtime, image, [sys.executable, "-m", "compute_endpoint.worker"])
        fd = next(int(w.removeprefix("--fd=")) for w in argv if w.startswith("--fd="))
        assert fd > 2, "the worker's socket, inherited through the runtime at the number it was told"
    finally:
        stop(manager)
    wait_for(lambda: live_processes(shims) == [], timeout=10, what="the worker to end with its manager")


def engine_config(runtime: str, image: str) -> dict:
    return {"engine": {"max_workers_per_node": 1, "container_type": runtime, "container_uri": image,
                       "container_python": sys.executable, "worker_env": {"SITE_MARK": "x"}}}


class SocketDirRace(AssertionError):
    """The first manager failed to start (its runtime was told to bind a directory not made yet, as it once was)."""


def manager_runs(shims, runtime: str, image: str, ep) -> list[list[str]]:
    """The runtime's calls that started a manager, each checked: the manager in the image, its state bound."""
    runs = [a for a in calls(shims, runtime) if a[:2] != ["docker", "ps"]]  # (docker: the leftovers check lists)
    for argv in runs:
        assert_runs_in(argv, runtime, image, [sys.executable, "-m", "compute_endpoint.manager"])
        assert any(str(ep.dir) in word for word in argv[:argv.index(sys.executable)]), "the state directory is bound"
    return runs


@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if r != "docker"])
def test_an_endpoints_manager_runs_under_the_runtime_and_stop_leaves_nothing(runtime, shims, endpoint_factory,
                                                                            tmp_path):
    image = image_for(runtime, tmp_path)
    ep = endpoint_factory(f"in-{runtime}", config=engine_config(runtime, image))
    with ep.executor() as ex:
        views = [f.result(timeout=60) for f in [ex.submit(shim_view) for _ in range(3)]]
    assert {(v["runtime"], v["image"]) for v in views} == {(runtime, image)}
    runs = manager_runs(shims, runtime, image, ep)
    assert ep.stop().returncode == 0
    wait_for(lambda: live_processes(shims) == [], timeout=10, what="nothing left running under the shim")
    if len(runs) != 1:  # last: the checks above hold either way
        raise SocketDirRace(f"{len(runs)} manager starts for one block:\n{ep.logs()}")


def test_a_docker_manager_runs_in_a_labelled_container_and_one_a_killed_endpoint_left_goes_at_the_next_start(
        shims, endpoint_factory):
    image = "example/worker:1"
    ep = endpoint_factory("in-docker", config=engine_config("docker", image))
    with ep.executor() as ex:
        views = [f.result(timeout=60) for f in [ex.submit(shim_view) for _ in range(3)]]
    assert {(v["runtime"], v["image"]) for v in views} == {("docker", image)}
    (argv,) = manager_runs(shims, "docker", image, ep)
    (left,) = docker_containers(shims)
    assert left["running"] and left["name"].startswith("ce-in-docker-block-0-")
    assert left["labels"]["compute-endpoint.state-dir"] == str(ep.dir)
    assert "--env=SITE_MARK" in argv and {v["container"] for v in views} == {left["id"]}

    components = ep.components()
    os.kill(components["endpoint"], signal.SIGKILL)
    os.kill(components["managers"][0], signal.SIGKILL)  # the docker client: as with docker, its container lives on
    wait_for(lambda: not pid_alive(components["managers"][0]), timeout=10, what="the client to die")
    assert [c["id"] for c in docker_containers(shims) if c["running"]] == [left["id"]]
    ep.start()
    with ep.executor() as ex:
        assert ex.submit(shim_view).result(timeout=60)["runtime"] == "docker"
    assert left["id"] not in [c["id"] for c in docker_containers(shims)]
    assert not pid_alive(left["pid"]), "the leftover manager was killed with its container"
    assert ["docker", "rm", "--force", left["id"][:12]] in calls(shims, "docker")
    assert ep.stop().returncode == 0
    wait_for(lambda: live_processes(shims) == [], timeout=10, what="nothing left running under the shim")
    assert docker_containers(shims) == []
