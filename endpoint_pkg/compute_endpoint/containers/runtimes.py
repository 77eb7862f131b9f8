"""How each container runtime runs a command in an image.

The endpoint builds these command lines; nothing here starts a process.
docker and podman run a container of their own (``--rm``, a name, a label
with the endpoint, ``--init`` so that the command is not PID 1 and gets its
SIGTERM, the host's network so that the interchange is where it was).
Apptainer, Singularity, Shifter and Charliecloud run the command as a child
in the caller's process tree, which is what batch schedulers expect.
``custom`` is the operator's own template.
"""

import shlex
from dataclasses import dataclass, field

RUNTIMES = ("docker", "podman", "apptainer", "singularity", "shifter", "charliecloud", "custom")
ENGINES = ("docker", "podman")  # the runtimes whose containers outlive a killed client, and need removing
LABEL = "compute-endpoint.endpoint"

# custom templates take {image}, {command} and {rundir}, and the names upstream's engine documents.
UPSTREAM_PLACEHOLDERS = {"EXECUTOR_LAUNCH_CMD": "command", "EXECUTOR_RUNDIR": "rundir"}


class ContainerError(ValueError):
    """A container specification that cannot be run: says which part and what to write instead."""


@dataclass(frozen=True)
class Container:
    """One runtime and image, with the runtime's extra options (shell words) or, for custom, its template."""

    runtime: str
    image: str = ""
    options: str = ""

    def __post_init__(self):
        if self.runtime not in RUNTIMES:
            raise ContainerError(f"unknown container runtime {self.runtime!r}; expected one of: {', '.join(RUNTIMES)}")
        if self.runtime != "custom" and not self.image:
            raise ContainerError(f"{self.runtime} needs an image to run (container_uri)")
        if self.runtime == "custom" and not any(p in self.options for p in ("{command}", "{EXECUTOR_LAUNCH_CMD}")):
            raise ContainerError("a custom container's template (container_cmd_options) must contain {command} "
                                 "(or upstream's {EXECUTOR_LAUNCH_CMD}), where the command goes")
        try:
            shlex.split(self.options)
        except ValueError as exc:
            raise ContainerError(f"container options {self.options!r} are not valid shell words: {exc}") from None

    @property
    def removable(self) -> bool:
        """Its containers live apart from the process that started them (docker, podman)."""
        return self.runtime in ENGINES

    @property
    def key(self) -> str:
        """The container type tasks and managers are routed by: RUNTIME:IMAGE."""
        return f"{self.runtime}:{self.image}"


@dataclass(frozen=True)
class RunContext:
    """Where a command runs: the container's name and labels, and directories it must see at the same path."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    binds: tuple[str, ...] = ()
    env_keys: tuple[str, ...] = ()  # passed by name: values never appear on a command line
    rundir: str = ""


def command_line(container: Container, command: list[str], run: RunContext) -> list[str]:
    """The argv that runs ``command`` in ``container``."""
    options = shlex.split(container.options)
    binds = list(dict.fromkeys(run.binds))
    if container.runtime in ENGINES:
        argv = [container.runtime, "run", "--rm", "--init", "--name", run.name, "--network", "host"]
        argv += [f"--label={key}={value}" for key, value in run.labels.items()]
        argv += [f"--volume={path}:{path}" for path in binds]
        argv += [f"--env={key}" for key in run.env_keys]
        return argv + options + [container.image, *command]
    if container.runtime in ("apptainer", "singularity"):
        argv = [container.runtime, "exec"] + [f"--bind={path}" for path in binds]
        return argv + options + [container.image, *command]
    if container.runtime == "shifter":
        argv = ["shifter", f"--image={container.image}"] + [f"--volume={path}:{path}" for path in binds]
        return argv + options + ["--", *command]
    if container.runtime == "charliecloud":
        argv = ["ch-run"] + [f"--bind={path}" for path in binds]
        return argv + options + [container.image, "--", *command]
    return _custom(container, command, run)


def _custom(container: Container, command: list[str], run: RunContext) -> list[str]:
    """The template with its placeholders filled in as text, then split into words as a shell would.

    The command goes in as shell words, so that both ``... {command}`` and ``sh -c '{command}'`` work.
    """
    text = container.options
    for upstream, ours in UPSTREAM_PLACEHOLDERS.items():
        text = text.replace("{" + upstream + "}", "{" + ours + "}")
    values = {"image": container.image, "rundir": run.rundir or (run.binds[0] if run.binds else ""),
              "command": shlex.join(command)}
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return shlex.split(text)


def removal_commands(runtime: str, label: str) -> list[list[str]]:
    """What lists the containers with ``label`` (KEY=VALUE) that a runtime keeps (docker, podman), and removes them
    (the ids go at the end)."""
    if runtime not in ENGINES:
        return []
    return [[runtime, "ps", "--all", "--quiet", f"--filter=label={label}"], [runtime, "rm", "--force"]]


def batch_script(container: Container, argv: list[str], name: str) -> str:
    """A job-script line that runs ``argv``; for docker and podman, a trap removes the container when the job ends.

    Without cgroups a scheduler's cancel can miss a container (it is not the job's child), so the job removes it.
    """
    if not container.removable:
        return shlex.join(argv)
    remove = shlex.join([container.runtime, "rm", "--force", name])
    return (f"trap '{remove} >/dev/null 2>&1' EXIT; trap 'exit 143' TERM INT; "
            f"{shlex.join(argv)} & wait $!")


NO_DOCKER_WORKERS = ("docker cannot run per-function workers: a worker talks to its manager over an inherited "
                     "socket, and a docker container inherits none (the daemon starts it, not the client). List "
                     "the image as podman:IMAGE (podman runs docker images), or run the whole pool in docker "
                     "with engine.container_type: docker")

# A worker talks to its manager over an inherited socket. docker and podman pass a
# container only the descriptors from 3 on (--preserve-fds), so the socket is moved to 3.
WORKER_FD_IN_ENGINES = 3


def worker_command_line(container: Container, worker: list[str], fd: int, run: RunContext,
                        user: tuple[int, int] | None = None) -> tuple[list[str], int]:
    """The argv that runs a worker in ``container``, and the descriptor number the worker must be told.

    ``worker`` is its command with ``{fd}`` where the descriptor number goes. ``user``
    (uid, gid): who the worker runs as inside a docker or podman container (the
    other runtimes run it as whoever starts them).
    """
    if container.runtime not in ENGINES:
        return command_line(container, [w.replace("{fd}", str(fd)) for w in worker], run), fd
    if container.runtime == "docker":
        raise ContainerError(NO_DOCKER_WORKERS)
    inner = [w.replace("{fd}", str(WORKER_FD_IN_ENGINES)) for w in worker]
    argv = command_line(container, inner, run)
    extra = ["--preserve-fds=1"] + ([f"--user={user[0]}:{user[1]}"] if user else [])
    argv = argv[:2] + extra + argv[2:]
    if fd == WORKER_FD_IN_ENGINES:
        return argv, fd
    # The shell moves the socket to 3, closes the original, then becomes the runtime's client
    # (bash: dash takes no descriptor above 9 in a redirection).
    move = f'exec "$@" {WORKER_FD_IN_ENGINES}<&{fd} {fd}<&-'
    return ["/bin/bash", "-c", move, "bash", *argv], fd
