"""Workers and batch jobs under docker, Apptainer, Singularity and Shifter (test_container_runtimes.py has the
managers' command lines, and podman's and Charliecloud's workers); docker's command lines as a real docker
client parses them, and the docker shim (tests/support/runtime_shim.py) agreeing with that client."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from compute_endpoint.config import ConfigError, Engine, load_yaml_text
from compute_endpoint.containers.runtimes import (
    Container,
    ContainerError,
    RunContext,
    batch_script,
    command_line,
    removal_commands,
    worker_command_line,
)
from compute_endpoint.errors import EndpointError
from compute_endpoint.manager import worker_pool
from compute_endpoint.paths import EndpointDir
from compute_endpoint.providers.containers import check_binds, wrap_batch, wrap_local

from ..support.runtime_shim import DRY_RUN_ENV, install

RUN = RunContext(name="ce-worker-0123456789ab", labels={"compute-endpoint.manager": "m-1"},
                 binds=("/work/dir",), env_keys=("SITE",))
WORKER = ["/opt/ce/bin/python3", "-m", "compute_endpoint.worker", "--fd={fd}", "--parent-pid=0"]
MANAGER = ["python3", "-m", "compute_endpoint.manager"]
EXEC_RUNTIMES = [("apptainer", "/images/worker.sif"), ("singularity", "/images/worker.sif"),
                 ("shifter", "docker:site/worker:1")]


@pytest.mark.parametrize("runtime, image", EXEC_RUNTIMES)
def test_a_worker_under_an_exec_runtime_keeps_its_descriptor_and_runs_as_its_caller(runtime, image):
    # These runtimes exec the command in the caller's process tree: the inherited socket is there as it was.
    argv, fd = worker_command_line(Container(runtime, image), WORKER, 9, RUN, user=(998, 997))
    assert fd == 9
    assert argv == command_line(Container(runtime, image), [w.replace("{fd}", "9") for w in WORKER], RUN)
    assert argv[-5:] == ["/opt/ce/bin/python3", "-m", "compute_endpoint.worker", "--fd=9", "--parent-pid=0"]
    assert not any("user" in word or "preserve" in word for word in argv), "no --user: they run as whoever starts them"


def test_apptainer_and_shifter_workers_see_the_working_directory_at_the_same_path():
    apptainer, _ = worker_command_line(Container("apptainer", "/images/w.sif", "--nv"), WORKER, 9, RUN)
    assert apptainer[:4] == ["apptainer", "exec", "--bind=/work/dir", "--nv"] and apptainer[4] == "/images/w.sif"
    shifter, _ = worker_command_line(Container("shifter", "docker:site/worker:1"), WORKER, 9, RUN)
    assert shifter[:3] == ["shifter", "--image=docker:site/worker:1", "--volume=/work/dir:/work/dir"]
    assert shifter[3] == "--"


def test_a_docker_batch_line_removes_its_container_when_the_job_ends():
    argv = command_line(Container("docker", "site/worker:1"), MANAGER, RunContext(name="ce-x"))
    line = batch_script(Container("docker", "site/worker:1"), argv, "ce-x")
    assert line.startswith("trap 'docker rm --force ce-x >/dev/null 2>&1' EXIT; trap 'exit 143' TERM INT; ")
    assert line.endswith(f"{shlex.join(argv)} & wait $!")


@pytest.mark.parametrize("runtime, image", EXEC_RUNTIMES)
def test_an_exec_runtimes_batch_line_is_the_command_alone(runtime, image):
    # Its command is the job's child: the scheduler's cancel reaches it, no trap needed.
    argv = command_line(Container(runtime, image), MANAGER, RunContext(name="unused"))
    assert batch_script(Container(runtime, image), argv, "unused") == shlex.join(argv)


@pytest.mark.parametrize("runtime, image", [("docker", "site/worker:1"), *EXEC_RUNTIMES])
def test_a_batch_block_wraps_its_manager_in_the_runtime(tmp_path, runtime, image):
    engine = Engine(container_type=runtime, container_uri=image, container_python="/opt/ce/bin/python3")
    ep = EndpointDir("demo", tmp_path / "config", tmp_path / "state")
    argv = shlex.split(wrap_batch(engine, engine.container, ep, MANAGER, "block-2"))
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[2]
    if runtime == "docker":
        assert script.startswith('name="ce-demo-block-2-$(hostname -s)-$$"; ')
        assert "trap 'docker rm --force \"$name\" >/dev/null 2>&1' EXIT" in script and '--name "$name"' in script
        return
    inner = shlex.split(script)
    assert inner[0] == runtime and "$name" not in script
    assert inner[-3:] == ["/opt/ce/bin/python3", "-m", "compute_endpoint.manager"]
    binds = [w for w in inner if w.startswith(("--bind=", "--volume="))]
    assert any(str(tmp_path / "state") in w for w in binds), "the state directory is seen at the same path"


# --- docker's command lines, as the docker client parses them --------------------------------------------------

DOCKER = shutil.which("docker")


def docker_client_accepts(argv: list[str], tmp_path) -> tuple[bool, str]:
    """Whether a real docker client takes this command line: with no daemon to reach, one it parses fails at the
    connection instead (a refused option fails before, with exit status 125 and what it refused)."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock", "DOCKER_CONFIG": str(tmp_path)}
    done = subprocess.run([DOCKER, *argv[1:]], capture_output=True, text=True, timeout=30, env=env)
    return "Cannot connect to the Docker daemon" in done.stderr, done.stderr.strip().splitlines()[0]


def removal_argv(monkeypatch) -> list[str]:
    """What the manager's pool runs to remove a gone docker worker's container."""
    ran = []
    with monkeypatch.context() as patch:  # (it is the subprocess module itself: the tests run processes after)
        patch.setattr(worker_pool.subprocess, "run", lambda argv, **kw: ran.append(argv))
        worker_pool._remove_container(worker_pool.WorkerHandle(0, None, None, ctype="docker:site/worker:1",
                                                               container_name="ce-worker-0123456789ab"))
    return ran[0]


def docker_lines(kind: str, tmp_path, monkeypatch) -> list[str]:
    container = Container("docker", "site/worker:1", "--memory 2g")
    if kind == "manager":
        engine = Engine(container_type="docker", container_uri="site/worker:1", worker_env={"SITE": "x"})
        return wrap_local(engine, engine.container, EndpointDir("demo", tmp_path / "c", tmp_path / "s"), MANAGER,
                          "block-0")
    if kind in ("list-leftovers", "remove-leftovers"):
        listing, removal = removal_commands("docker", "compute-endpoint.state-dir=/state/demo")
        return listing if kind == "list-leftovers" else [*removal, "0123456789ab"]
    if kind == "batch-trap":
        return shlex.split(batch_script(container, ["docker", "run"], "ce-x").split("'")[1])[:-2]
    return removal_argv(monkeypatch)


def test_docker_is_refused_for_per_function_workers_with_what_to_use_instead():
    with pytest.raises(ContainerError, match="a docker container inherits none .* List the image as podman:IMAGE"):
        worker_command_line(Container("docker", "site/worker:1"), WORKER, 9, RUN)
    with pytest.raises(ConfigError, match="containers: py: docker cannot run per-function workers"):
        load_yaml_text('containers: {py: "docker:site/worker:1"}', "config.yaml")


@pytest.mark.skipif(DOCKER is None, reason="no docker client on this host")
@pytest.mark.parametrize("kind", ["manager", "list-leftovers", "remove-leftovers", "batch-trap", "worker-removal"])
def test_the_docker_client_parses_each_command_line_the_endpoint_builds(kind, tmp_path, monkeypatch):
    argv = docker_lines(kind, tmp_path, monkeypatch)
    assert argv[0] == "docker"
    accepted, said = docker_client_accepts(argv, tmp_path)
    assert accepted, f"docker refused {shlex.join(argv)}: {said}"


# The shim that stands in for docker in tests/integration/test_runtime_shims.py must take what docker takes and
# refuse what it refuses, or a test through it proves nothing about docker.
OTHER_DOCKER_LINES = [
    ["docker", "run", "-i", "--rm", "-e", "A=1", "-v", "/a:/b", "--user", "0:0", "img", "true"],
    ["docker", "run", "--rm", "--name=x", "--label", "k=v", "-w/tmp", "img", "sh", "-c", "--not-an-option"],
    ["docker", "run", "--rm"],
    ["docker", "run", "--time=0", "img", "true"],
    ["docker", "ps", "--bogus"],
    ["docker", "ps", "-aq", "--filter", "label=k=v", "--format", "{{.Names}}"],
    ["docker", "rm"],
    ["docker", "rm", "-f", "-v", "x", "y"],
]


@pytest.mark.skipif(DOCKER is None, reason="no docker client on this host")
@pytest.mark.parametrize("kind", ["manager", "list-leftovers", "remove-leftovers", "batch-trap", "worker-removal",
                                  *range(len(OTHER_DOCKER_LINES))])
def test_the_docker_shim_takes_and_refuses_what_the_docker_client_does(kind, tmp_path, monkeypatch):
    argv = OTHER_DOCKER_LINES[kind] if isinstance(kind, int) else docker_lines(kind, tmp_path, monkeypatch)
    env = install(tmp_path / "bin", tmp_path / "shim", ("docker",))
    shim = subprocess.run([str(tmp_path / "bin" / "docker"), *argv[1:]], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env, DRY_RUN_ENV: "1"})
    accepted, said = docker_client_accepts(argv, tmp_path)
    assert (shim.returncode == 0) == accepted, f"docker said {said!r}; the shim said {shim.stderr.strip()!r}"


def test_shifter_with_a_system_endpoints_state_is_refused_before_anything_starts(tmp_path):
    # Shifter refuses user volumes onto /var (validateVolumeMap_userRequest); the shim refuses them the same way.
    engine = Engine(container_type="shifter", container_uri="docker:site/worker:1")
    system = EndpointDir("demo", Path("/etc/compute-endpoint/demo"), Path("/var/lib/compute-endpoint/demo"))
    argv = wrap_local(engine, engine.container, system, MANAGER, "block-0")
    env = install(tmp_path / "bin", tmp_path / "shim", ("shifter",))
    done = subprocess.run([str(tmp_path / "bin" / "shifter"), *argv[1:]], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env, DRY_RUN_ENV: "1"})
    assert done.returncode != 0
    with pytest.raises(EndpointError, match="Shifter refuses volumes onto /etc, /var .* Run this endpoint per user"):
        check_binds(engine, system)
    check_binds(engine, EndpointDir("demo", tmp_path / "config", tmp_path / "state"))  # per user: fine
