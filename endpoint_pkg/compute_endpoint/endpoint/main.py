"""Entry point of the endpoint daemon: ``python -m compute_endpoint.endpoint NAME``.

`compute-endpoint start` runs this in the background (``DaemonSettings.command()``)
and waits on ``--ready-fd``; systemd runs it in the foreground as a Type=notify
service.
"""

import json
import logging
import os
import socket
import sys
import time
import traceback
import uuid
from dataclasses import dataclass

from ..cmdline import CommandLine, option
from ..config import Config, load_config
from ..credentials import CredentialStore, Identity, environment_without_secrets, resolve_identity
from ..errors import AlreadyRunningError, EndpointError, ExitCode
from ..logs import setup_logging
from ..paths import EndpointDir, EndpointHome, write_private
from ..readiness import Readiness
from .components import Components, LocalComponents, UnitComponents
from .daemon import EndpointDaemon
from .hooks import run_hook
from .lock import DaemonLock
from .metrics import EndpointMetrics, MetricsServer

log = logging.getLogger(__name__)


@dataclass
class DaemonSettings(CommandLine):
    MODULE = "compute_endpoint.endpoint"
    DESCRIPTION = "Run one endpoint."

    name: str = option(help="the endpoint's name", positional=True)
    ready_fd: int | None = option(None, help="report start-up progress on this pipe")
    identity_stdin: bool = option(False, help="read the broker identity from stdin")
    log_to_stderr: bool = option(False, help="log to stderr instead of the log file")
    components: str = option("local", choices=("local", "units"),
                             help="local: start the interchange and managers as children; units: they are systemd "
                                  "units")


def _read_identity(identity_stdin: bool, home: EndpointHome, ep: EndpointDir) -> Identity:
    if identity_stdin:
        data = json.loads(sys.stdin.readline() or "{}")
        return Identity(data["client_id"], data["secret"], data.get("source", "start command"))
    return resolve_identity(CredentialStore(ep.credentials_file, home.key_file), ep.name)


def run(settings: DaemonSettings, readiness: Readiness) -> int:
    """Run the daemon in the foreground until it is stopped; returns the exit code."""
    home = EndpointHome.resolve()
    ep = home.existing(settings.name)
    lock = DaemonLock(ep.lock_file)
    if not lock.acquire():
        raise AlreadyRunningError(f"endpoint {ep.name!r} is already running")
    exporter: MetricsServer | None = None
    try:
        identity = _read_identity(settings.identity_stdin, home, ep)
        config = load_config(ep.config_file())
        config.engine.check_address()
        metrics = EndpointMetrics()
        exporter = MetricsServer.start(config.metrics, metrics, ep.config_file())  # a bad address fails the start
        if not home.system:
            ep.make_private()  # also tightens an endpoint configured by an older version
        setup_logging(None if settings.log_to_stderr else ep.log_file("endpoint"), config.log_level)
        for note in config.engine.notes:
            log.warning("config: %s", note)
        if config.endpoint_setup:
            readiness.progress("running endpoint_setup")
        run_hook("endpoint_setup", config.endpoint_setup, ep.state_dir, must_succeed=True)
        write_private(ep.pid_file, f"{os.getpid()}\n{socket.gethostname()}\n")  # the host: $HOME may be shared
        try:
            return _serve(ep, config, identity, readiness, settings.components, metrics)
        finally:
            run_hook("endpoint_teardown", config.endpoint_teardown, ep.state_dir, must_succeed=False)
    finally:
        if exporter is not None:
            exporter.stop()
        lock.release()


def _serve(ep: EndpointDir, config: Config, identity: Identity, readiness: Readiness, components: str,
           metrics: EndpointMetrics) -> int:
    info = ep.read_info()
    endpoint_id = info.get("endpoint_id") or str(uuid.uuid4())
    owner = info.get("owner") or identity.client_id

    def on_registered() -> None:
        if not info.get("endpoint_id"):
            ep.write_info({**info, "name": ep.name, "endpoint_id": endpoint_id, "owner": owner,
                           "registered_at": time.time()})

    log.info("starting endpoint %s (id %s, owner %s) as %s from %s", ep.name, endpoint_id, owner,
             identity.client_id, identity.source)
    parts: Components
    if components == "units":
        parts = UnitComponents(ep, config)
    else:
        parts = LocalComponents(ep, config, environment_without_secrets())
    daemon = EndpointDaemon(ep, config, identity, endpoint_id, owner, readiness, parts, on_registered, metrics)
    try:
        code = daemon.run()
    except Exception as exc:
        log.exception("the endpoint daemon failed")
        readiness.failed(f"the endpoint daemon failed: {exc} (see {ep.log_file('endpoint')})", ExitCode.INTERNAL)
        return ExitCode.INTERNAL  # the pid file stays: `list` shows Disconnected until the next start or stop
    ep.pid_file.unlink(missing_ok=True)
    log.info("endpoint %s stopped", ep.name)
    return code


def main(argv: list[str] | None = None) -> int:
    settings = DaemonSettings.from_argv(argv)
    readiness = Readiness(settings.ready_fd)
    try:
        return run(settings, readiness)
    except EndpointError as exc:
        readiness.failed(str(exc), exc.exit_code)
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so with the code that means it, and leave the traceback
        readiness.failed(f"internal error: {type(exc).__name__}: {exc}", ExitCode.INTERNAL)
        traceback.print_exc()
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
