"""Managers in containers (engine.container_type): the whole pool runs in the image, upstream's behaviour.

The manager command line is wrapped by the runtime (containers/runtimes.py); the
container sees the endpoint's state directory (keys, sockets, logs) at the
same path. docker and podman containers carry labels naming the endpoint,
so that those a crash left behind are removed at the next start and at stop.
"""

import logging
import shlex
import subprocess
import uuid

from ..config import Engine
from ..containers.runtimes import LABEL, Container, RunContext, batch_script, command_line, removal_commands
from ..errors import EndpointError
from ..paths import EndpointDir

log = logging.getLogger(__name__)

STATE_LABEL = "compute-endpoint.state-dir"
SHIFTER_RESERVED = ("/etc", "/var", "/opt/udiImage")  # Shifter refuses user volumes onto these
_NAME_SENTINEL = "@@container-name@@"


def _context(engine: Engine, ep: EndpointDir, name: str) -> RunContext:
    binds = [str(ep.state_dir), str(ep.socket_dir)]
    binds += [path for path in (engine.working_dir, engine.worker_logdir_root) if path]
    return RunContext(name=name, labels={LABEL: ep.name, STATE_LABEL: str(ep.state_dir)},
                      binds=tuple(binds), env_keys=tuple(engine.worker_environment()), rundir=str(ep.state_dir))


def check_binds(engine: Engine, ep: EndpointDir) -> None:
    """Refuse, before anything starts, directories the runtime will not bind where the container must see them."""
    container = engine.container
    if container is None or container.runtime != "shifter":
        return
    refused = [b for b in _context(engine, ep, "").binds
               if any(b == r or b.startswith(r + "/") for r in SHIFTER_RESERVED)]
    if refused:
        raise EndpointError(f"engine.container_type: shifter: Shifter refuses volumes onto /etc, /var and "
                            f"/opt/udiImage, and the managers need {', '.join(refused)} at the same path. Run "
                            "this endpoint per user (its state under ~/.compute_endpoint), or use apptainer, "
                            "singularity or charliecloud, which bind any directory")


def _in_image(engine: Engine, argv: list[str]) -> list[str]:
    """The manager command with the image's interpreter instead of this one's."""
    return [engine.container_python, *argv[1:]]


def wrap_local(engine: Engine, container: Container, ep: EndpointDir, argv: list[str], block: str) -> list[str]:
    """A manager on this host, in a container."""
    name = f"ce-{ep.name}-{block}-{uuid.uuid4().hex[:6]}"
    return command_line(container, _in_image(engine, argv), _context(engine, ep, name))


def wrap_batch(engine: Engine, container: Container, ep: EndpointDir, argv: list[str], block: str) -> str:
    """A job script's command for each node of a block: a shell that names the container after its node."""
    run = _context(engine, ep, _NAME_SENTINEL)
    script = batch_script(container, command_line(container, _in_image(engine, argv), run), _NAME_SENTINEL)
    script = script.replace(_NAME_SENTINEL, '"$name"')
    if container.removable:
        script = f'name="ce-{ep.name}-{block}-$(hostname -s)-$$"; {script}'
    return shlex.join(["/bin/sh", "-c", script])


def remove_leftovers(container: Container | None, ep: EndpointDir, timeout: float = 60.0) -> list[str]:
    """Remove this endpoint's docker/podman containers still present; returns their ids."""
    if container is None or not container.removable:
        return []
    listing, removal = removal_commands(container.runtime, f"{STATE_LABEL}={ep.state_dir}")
    try:
        found = subprocess.run(listing, capture_output=True, text=True, timeout=timeout, check=True).stdout.split()
        if found:
            subprocess.run([*removal, *found], capture_output=True, text=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not remove this endpoint's leftover %s containers (%s): remove them with `%s rm "
                    "--force $(%s)`", container.runtime, _describe(exc), container.runtime, shlex.join(listing))
        return []
    if found:
        log.info("removed %d leftover %s container(s): %s", len(found), container.runtime, " ".join(found))
    return found


def _describe(exc: Exception) -> str:
    stderr = getattr(exc, "stderr", None)
    return stderr.strip().splitlines()[-1] if stderr and stderr.strip() else str(exc)

