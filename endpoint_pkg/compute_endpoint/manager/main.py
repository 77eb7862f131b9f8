"""Entry point of a manager process: ``python -m compute_endpoint.manager``.

Started with flags (``ManagerSettings.command()``) by whatever provides
managers, or as the ``compute-manager@NAME`` unit from the endpoint's
directory (``serve_endpoint``).
"""

import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from ..addresses import is_loopback
from ..errors import EndpointError
from ..logs import logs_to_file, setup_logging
from ..paths import EndpointDir
from ..procs import die_with_parent
from ..readiness import Readiness
from .manager import Manager, install_signal_handlers
from .settings import ManagerSettings

if TYPE_CHECKING:  # a manager started with flags has no config to read
    from ..config import Config

log = logging.getLogger(__name__)


def run(settings: ManagerSettings, worker_env: dict[str, str] | None = None) -> int:
    settings.name_this_process()
    if settings.log_dir and not settings.log_file:  # one file per manager: nodes of a block share the directory
        settings.log_file = settings.log_dir / f"{settings.manager_id}.log"
    setup_logging(settings.log_file, settings.log_level)
    if settings.parent_pid:
        die_with_parent(settings.parent_pid, signal.SIGTERM)
    try:
        manager = Manager(settings, worker_env or dict(os.environ), logs_to_file(settings.log_file), Readiness())
    except EndpointError as exc:
        log.error("%s", exc)
        print(f"manager: {exc}", file=sys.stderr)
        return 2
    install_signal_handlers(manager)
    try:
        manager.run()
    except Exception:
        log.exception("manager %s failed", settings.manager_id)
        manager.shutdown()
        return 1
    return 0


def serve_endpoint(ep: EndpointDir, config: "Config") -> int:
    """Run as the endpoint's ``compute-manager@`` unit, for the interchange its config names.

    Where the endpoint's interchange runs on this host (it has recorded itself
    in the state directory), the manager uses its private socket; elsewhere it
    connects over TCP to ``engine.address:engine.worker_port``.
    """
    engine = config.engine
    keys_dir = None
    if ep.interchange_record.exists():
        interchange = ep.local_manager_socket
    elif engine.worker_port and not is_loopback(engine.address):
        interchange, keys_dir = f"tcp://{engine.address}:{engine.worker_port}", ep.keys_dir
    else:
        raise EndpointError(f"no interchange for endpoint {ep.name!r} on this host: start compute-interchange@"
                            f"{ep.name} here, or, for a manager on another host, set engine.address and "
                            "engine.worker_port in its config to the endpoint host's")
    settings = ManagerSettings.from_config(config, interchange, f"{socket.gethostname()}.{ep.name}",
                                           keys_dir=keys_dir)
    # The packaged unit names the user workers run as, and grants what switching to it takes.
    settings.worker_user = os.environ.get("COMPUTE_ENDPOINT_WORKER_USER", "")
    return run(settings, {**os.environ, **config.engine.worker_environment()})


def main(argv: list[str] | None = None) -> int:
    return run(ManagerSettings.from_argv(argv))


if __name__ == "__main__":
    sys.exit(main())
