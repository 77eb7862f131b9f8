"""The command line each container runtime gets, for a manager on this host and in a batch job."""

import shlex

import pytest

from compute_endpoint.config import Config, ConfigError, Engine
from compute_endpoint.containers.runtimes import (
    Container,
    ContainerError,
    RunContext,
    command_line,
    worker_command_line,
)
from compute_endpoint.paths import EndpointDir
from compute_endpoint.providers.containers import wrap_batch, wrap_local

RUN = RunContext(name="ce-demo-block-0-abc123", labels={"compute-endpoint.endpoint": "demo"},
                 binds=("/state/demo", "/state/demo"), env_keys=("SITE",), rundir="/state/demo")
COMMAND = ["python3", "-m", "compute_endpoint.manager", "--workers=2"]
MANAGER = ["python3", "-m", "compute_endpoint.manager"]


def test_podman_and_docker_run_a_named_labelled_container_with_init_on_the_host_network():
    for runtime in ("podman", "docker"):
        argv = command_line(Container(runtime, "worker:1", "--memory 2g"), COMMAND, RUN)
        assert argv[:8] == [runtime, "run", "--rm", "--init", "--name", "ce-demo-block-0-abc123", "--network", "host"]
        assert "--label=compute-endpoint.endpoint=demo" in argv
        assert argv.count("--volume=/state/demo:/state/demo") == 1  # the same directory bound once
        assert "--env=SITE" in argv  # by name: the value is never on a command line
        assert argv[-7:] == ["--memory", "2g", "worker:1", *COMMAND]


@pytest.mark.parametrize("runtime", ["apptainer", "singularity"])
def test_apptainer_and_singularity_exec_the_command_in_the_image(runtime):
    argv = command_line(Container(runtime, "/images/worker.sif", "--nv"), COMMAND, RUN)
    assert argv == [runtime, "exec", "--bind=/state/demo", "--nv", "/images/worker.sif", *COMMAND]


def test_shifter_names_the_image_and_runs_the_command_after_a_double_dash():
    argv = command_line(Container("shifter", "docker:site/worker:1"), COMMAND, RUN)
    assert argv == ["shifter", "--image=docker:site/worker:1", "--volume=/state/demo:/state/demo", "--", *COMMAND]


def test_charliecloud_runs_a_directory_image():
    argv = command_line(Container("charliecloud", "/var/tmp/worker"), COMMAND, RUN)
    assert argv == ["ch-run", "--bind=/state/demo", "/var/tmp/worker", "--", *COMMAND]


def test_custom_templates_take_our_placeholders_and_upstreams():
    ours = Container("custom", "worker:1", "mywrap --image {image} --dir {rundir} -- {command}")
    assert command_line(ours, COMMAND, RUN) == ["mywrap", "--image", "worker:1", "--dir", "/state/demo", "--",
                                                *COMMAND]
    upstream = Container("custom", options="podman run -v {EXECUTOR_RUNDIR}:{EXECUTOR_RUNDIR} img "
                                           "sh -c '{EXECUTOR_LAUNCH_CMD}'")
    argv = command_line(upstream, COMMAND, RUN)
    assert argv[:4] == ["podman", "run", "-v", "/state/demo:/state/demo"]
    assert argv[-3:] == ["sh", "-c", shlex.join(COMMAND)]  # inside a word: the command, quoted for a shell


@pytest.mark.parametrize("container, complaint", [
    (dict(runtime="lxc", image="x"), "unknown container runtime 'lxc'"),
    (dict(runtime="podman"), r"needs an image to run \(container_uri\)"),
    (dict(runtime="custom", options="run {image}"), r"must contain \{command\}"),
    (dict(runtime="podman", image="x", options="--env 'unterminated"), "not valid shell words"),
])
def test_a_container_that_cannot_run_says_why(container, complaint):
    with pytest.raises(ContainerError, match=complaint):
        Container(**container)


def test_the_engine_refuses_a_container_it_cannot_run_naming_the_key():
    with pytest.raises(ConfigError, match="container_type: podman needs an image to run"):
        Engine(container_type="podman")
    with pytest.raises(ConfigError, match="container_type: expected one of: docker, podman"):
        Engine(container_type="lxc")


def test_a_local_manager_runs_the_images_interpreter_and_sees_the_state_directory(tmp_path):
    engine = Engine(container_type="podman", container_uri="worker:1", container_python="/opt/ce/bin/python3",
                    worker_env={"SITE": "x"})
    ep = EndpointDir("demo", tmp_path / "config", tmp_path / "state")
    argv = wrap_local(engine, engine.container, ep, ["/usr/bin/python3.11", *MANAGER[1:]], "block-0")
    assert argv[argv.index("worker:1") + 1:] == ["/opt/ce/bin/python3", *MANAGER[1:]]
    assert f"--volume={tmp_path / 'state'}:{tmp_path / 'state'}" in argv
    assert f"--label=compute-endpoint.state-dir={tmp_path / 'state'}" in argv and "--env=SITE" in argv
    assert argv[argv.index("--name") + 1].startswith("ce-demo-block-0-")


def test_a_batch_job_removes_its_podman_container_when_it_ends(tmp_path):
    engine = Engine(container_type="podman", container_uri="worker:1")
    ep = EndpointDir("demo", tmp_path / "config", tmp_path / "state")
    argv = shlex.split(wrap_batch(engine, engine.container, ep, MANAGER, "block-3"))
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[2]
    assert script.startswith('name="ce-demo-block-3-$(hostname -s)-$$"; ')
    assert "trap 'podman rm --force \"$name\" >/dev/null 2>&1' EXIT" in script
    assert '--name "$name"' in script and script.endswith("& wait $!")


def test_a_batch_job_under_charliecloud_runs_the_command_directly(tmp_path):
    engine = Engine(container_type="charliecloud", container_uri="/images/worker")
    ep = EndpointDir("demo", tmp_path / "config", tmp_path / "state")
    argv = shlex.split(wrap_batch(engine, engine.container, ep, MANAGER, "block-3"))
    inner = shlex.split(argv[2])
    assert inner[0] == "ch-run" and inner[-4:] == ["--", *MANAGER]


def test_the_registry_resolves_aliases_and_runtime_image_names_and_refuses_the_rest():
    registry = Config(containers={"py": {"runtime": "podman", "image": "worker:1"},
                                  "hpc": "charliecloud:/images/hpc"}).container_registry
    assert registry.resolve("py") == Container("podman", "worker:1")
    assert registry.resolve("charliecloud:/images/hpc") == Container("charliecloud", "/images/hpc")
    assert registry.resolve("RAW") is None and registry.resolve("") is None
    with pytest.raises(ContainerError, match=r"'podman:evil:1' is not one this endpoint allows; it allows: "
                                             r"hpc \(charliecloud:/images/hpc\), py \(podman:worker:1\)"):
        registry.resolve("podman:evil:1")
    with pytest.raises(ContainerError, match="runs no per-function containers"):
        Config().container_registry.resolve("py")


@pytest.mark.parametrize("containers, complaint", [
    ({"a": "lxc:x"}, "containers: a: unknown container runtime 'lxc'"),
    ({"a": "podman"}, "containers: a: expected RUNTIME:IMAGE"),
    ({"a": {"runtime": "podman", "image": "x", "privileged": True}}, "unknown key\\(s\\) privileged"),
    ({"a": {"runtime": "custom", "options": "{command}"}}, "custom templates wrap whole managers"),
    ({"RAW": "podman:x"}, "alias 'RAW'"),
])
def test_a_bad_container_list_is_refused_naming_the_alias(containers, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Config(containers=containers)


def test_a_podman_worker_gets_its_socket_as_descriptor_3_and_runs_as_the_workers_user():
    worker = ["python3", "-m", "compute_endpoint.worker", "--fd={fd}"]
    argv, fd = worker_command_line(Container("podman", "worker:1"), worker, 9, RUN, user=(998, 997))
    assert argv[:5] == ["/bin/bash", "-c", 'exec "$@" 3<&9 9<&-', "bash", "podman"]
    assert argv[5:9] == ["run", "--preserve-fds=1", "--user=998:997", "--rm"]
    assert argv[-4:] == ["python3", "-m", "compute_endpoint.worker", "--fd=3"] and fd == 9


def test_a_charliecloud_worker_keeps_its_descriptor():
    argv, fd = worker_command_line(Container("charliecloud", "/images/hpc"), ["w", "--fd={fd}"], 9, RUN)
    assert argv == ["ch-run", "--bind=/state/demo", "/images/hpc", "--", "w", "--fd=9"] and fd == 9


@pytest.mark.parametrize("engine, complaint", [
    ({"worker_mode": "no_container"}, "engine.worker_mode: no_container runs no per-function containers"),
    ({"worker_mode": "charliecloud"}, "containers: py: not charliecloud containers"),
    ({"worker_mode": "lxc"}, "worker_mode: expected one of: auto, no_container, singularity_reuse, docker"),
])
def test_worker_and_scheduler_modes_must_agree_with_the_containers_listed(engine, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Config(containers={"py": "podman:worker:1"}, engine=Engine(**engine))


def test_the_seed_eras_singularity_reuse_means_singularity_workers_that_are_reused():
    config = Config(containers={"sim": "singularity:/images/sim.sif"}, engine=Engine(worker_mode="singularity_reuse"))
    assert config.engine.worker_mode == "singularity"
