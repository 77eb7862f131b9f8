"""Entry point of the endpoint daemon: ``python -m compute_endpoint.endpoint NAME``.

`compute-endpoint start` runs this in the background and waits on
``--ready-fd``; systemd runs it in the foreground as a Type=notify service.
"""

import argparse
import json
import logging
import os
import sys
import time
import uuid

from ..config import load_config
from ..credentials import CredentialStore, Identity, environment_without_secrets, resolve_identity
from ..errors import EndpointError
from ..home import EndpointHome
from ..logs import setup_logging
from ..readiness import Readiness
from .components import LocalComponents, UnitComponents
from .daemon import EndpointDaemon
from .lock import DaemonLock

log = logging.getLogger("compute_endpoint.endpoint")


def _read_identity(identity_stdin: bool, home, ep) -> Identity:
    if identity_stdin:
        data = json.loads(sys.stdin.readline() or "{}")
        return Identity(data["client_id"], data["secret"], data.get("source", "start command"))
    return resolve_identity(CredentialStore(ep.credentials_file, home.key_file), ep.name)


def run(name: str, readiness: Readiness, components: str = "local", identity_stdin: bool = False,
        log_to_stderr: bool = False) -> int:
    """Run the daemon in the foreground until it is stopped; returns the exit code."""
    home = EndpointHome.resolve()
    ep = home.existing(name)
    lock = DaemonLock(ep.lock_file)
    if not lock.acquire():
        raise EndpointError(f"endpoint {ep.name!r} is already running")
    try:
        identity = _read_identity(identity_stdin, home, ep)
        config = load_config(ep.config_file())
        ep.pid_file.write_text(f"{os.getpid()}\n")
        setup_logging("endpoint", None if log_to_stderr else ep.log_file("endpoint"), config.log_level)
        return _serve(ep, config, identity, readiness, components)
    finally:
        lock.release()


def _serve(ep, config, identity: Identity, readiness: Readiness, components: str) -> int:
    info = ep.read_info()
    endpoint_id = info.get("endpoint_id") or str(uuid.uuid4())
    owner = info.get("owner") or identity.client_id

    def on_registered():
        if not info.get("endpoint_id"):
            ep.write_info({**info, "name": ep.name, "endpoint_id": endpoint_id, "owner": owner,
                           "registered_at": time.time()})

    log.info("starting endpoint %s (id %s, owner %s) as %s from %s", ep.name, endpoint_id, owner,
             identity.client_id, identity.source)
    if components == "units":
        parts = UnitComponents(ep)
    else:
        parts = LocalComponents(ep, config, environment_without_secrets())
    daemon = EndpointDaemon(ep, config, identity, endpoint_id, owner, readiness, parts, on_registered)
    try:
        code = daemon.run()
    except Exception as exc:
        log.exception("the endpoint daemon failed")
        readiness.failed(f"the endpoint daemon failed: {exc} (see {ep.log_file('endpoint')})")
        return 1  # the pid file stays: `list` shows Disconnected until the next start or stop
    ep.pid_file.unlink(missing_ok=True)
    log.info("endpoint %s stopped", ep.name)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="compute-endpoint-daemon", description="Run one endpoint.")
    parser.add_argument("name")
    parser.add_argument("--ready-fd", type=int, default=None, help="report start-up progress on this pipe")
    parser.add_argument("--identity-stdin", action="store_true", help="read the broker identity from stdin")
    parser.add_argument("--log-to-stderr", action="store_true", help="log to stderr instead of the log file")
    parser.add_argument("--components", choices=("local", "units"), default="local",
                        help="local: start the interchange and managers as children; units: they are systemd units")
    args = parser.parse_args(argv)
    readiness = Readiness(args.ready_fd)
    try:
        return run(args.name, readiness, args.components, args.identity_stdin, args.log_to_stderr)
    except EndpointError as exc:
        readiness.failed(str(exc))
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
