"""Entry point of the interchange process: ``python -m compute_endpoint.interchange``.

Started by the endpoint daemon with flags (``InterchangeSettings.command()``),
or as the ``compute-interchange@NAME`` unit from the endpoint's directory
(``serve_endpoint``).
"""

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..logs import setup_logging
from ..paths import EndpointDir, write_json
from ..procs import die_with_parent
from ..readiness import Readiness
from .interchange import Interchange
from .settings import InterchangeSettings

if TYPE_CHECKING:  # an interchange started with flags has no config to read
    from ..config import Config

log = logging.getLogger(__name__)


def run(settings: InterchangeSettings, on_ready: Callable[[Interchange], None] | None = None) -> int:
    """Run in the foreground until SIGTERM; ``on_ready(interchange)`` once its sockets are bound."""
    setup_logging(settings.log_file, settings.log_level)
    if settings.parent_pid:
        die_with_parent(settings.parent_pid, signal.SIGTERM)
    readiness = Readiness()
    try:
        interchange = Interchange(settings, readiness)
    except Exception as exc:  # typically the manager port is taken, or the socket directory is not ours
        log.error("cannot start the interchange: %s", exc)
        print(f"interchange: cannot start: {exc}", file=sys.stderr)
        readiness.failed(f"cannot start: {exc}", getattr(exc, "exit_code", 1))
        return 1

    def stop(_signum, _frame):
        interchange.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready:
        on_ready(interchange)
    readiness.ready(f"serving managers {interchange.describe_listeners()}")
    interchange.run()
    return 0


def serve_endpoint(ep: EndpointDir, config: "Config") -> int:
    """Run as the endpoint's ``compute-interchange@`` unit: the daemon finds it through the state directory.

    It listens for its endpoint and for managers on this host on sockets in the
    endpoint's private socket directory, and records itself in a file there,
    which tells managers on this host to use those sockets. Managers on other
    hosts need ``engine.worker_port`` in their config; when the endpoint's
    config leaves it unset, the port first chosen is kept across restarts.
    """
    port = config.engine.worker_port or ep.recorded_worker_port() or 0

    def record(interchange: Interchange) -> None:
        write_json(ep.interchange_record, {"pid": os.getpid(), "worker_address": interchange.settings.worker_address,
                                           "worker_port": interchange.worker_port})

    def settings(worker_port: int) -> InterchangeSettings:
        return InterchangeSettings.from_config(config, ep.interchange_socket, ep.local_manager_socket, worker_port,
                                               keys_dir=ep.keys_dir)

    code = run(settings(port), record)
    if code and port and not config.engine.worker_port:
        # The remembered port was taken meanwhile; any free one will do for local managers.
        code = run(settings(0), record)
    return code


def main(argv: list[str] | None = None) -> int:
    return run(InterchangeSettings.from_argv(argv))


if __name__ == "__main__":
    sys.exit(main())
