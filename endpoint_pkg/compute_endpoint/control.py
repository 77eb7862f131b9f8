"""The control plane: what the CLI does to endpoints (configure, login, start, stop, list, status, delete).

It runs in the CLI's process, not in the daemon: it starts the daemon (or its
systemd units), watches its lock and pid files, and asks it for its status
over the broker.

States (the seed's): Initialized (configured, never registered: id None),
Running (the daemon holds its lock), Stopped (stopped cleanly), Disconnected
(not running, but not stopped cleanly: a pid file without a living daemon;
the next start or stop cleans up after it).
"""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TextIO

from .broker import UNREACHABLE
from .config import Broker, Config, ConfigError, load_config
from .config.template import render_default_config
from .credentials import CredentialStore, Identity, environment_without_secrets, resolve_identity
from .endpoint.components import kill_leftovers
from .endpoint.lock import lock_is_held
from .endpoint.main import DaemonSettings
from .errors import AlreadyRunningError, EndpointError, UnavailableError, with_exit_code
from .paths import EndpointDir, EndpointHome, read_json, service_ids, share_with_service, write_private
from .procs import as_user, spawn, terminate
from .protocol import CommandAction
from .readiness import Readiness
from .sdk.client import Client
from .systemctl import Units, installed_units, owner_of, start_units, stop_units, unit_state

Progress = Callable[[str], None]


class State(StrEnum):
    INITIALIZED = "Initialized"
    RUNNING = "Running"
    STOPPED = "Stopped"
    DISCONNECTED = "Disconnected"


def state_of(ep: EndpointDir) -> State:
    if lock_is_held(ep.lock_file):
        return State.RUNNING
    if ep.pid_file.exists():
        return State.DISCONNECTED
    if not ep.read_info().get("endpoint_id"):
        return State.INITIALIZED
    return State.STOPPED


def daemon_pid(ep: EndpointDir) -> int | None:
    try:
        return int(ep.pid_file.read_text().split("\n")[0])
    except (OSError, ValueError):
        return None


def daemon_host(ep: EndpointDir) -> str | None:
    """The host the pid file was written on (older versions wrote none)."""
    try:
        lines = ep.pid_file.read_text().split("\n")
    except OSError:
        return None
    return lines[1].strip() or None if len(lines) > 1 else None


def other_host(ep: EndpointDir) -> str | None:
    """The host the daemon was started on, when that is not this one (login nodes sharing $HOME)."""
    host = daemon_host(ep)
    return host if host not in (None, socket.gethostname()) else None


# --- configure / login ------------------------------------------------------------


def configure(home: EndpointHome, name: str, broker_url: str | None) -> EndpointDir:
    ep = home.endpoint(name)
    if ep.is_configured():
        raise EndpointError(f"endpoint {name!r} is already configured ({ep.config_file()}); edit that file, "
                            f"or run `compute-endpoint delete {name}` first")
    if broker_url:
        try:
            Broker(url=broker_url, allow_plaintext=True)  # its shape; plaintext is the config's to allow
        except ConfigError as exc:
            raise EndpointError(f"--broker-url: {exc.detail}") from None
    if not home.system:
        home.config_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    ep.make_private()  # system-wide, share_with_service opens up what the service needs, below
    workers = max(1, min(os.cpu_count() or 1, 4))
    config_file = ep.config_dir / "config.yaml"
    write_private(config_file, render_default_config(name, broker_url, workers, home.system))
    if not ep.info_file.exists():
        ep.write_info({"name": name, "endpoint_id": None})
    if home.system:  # root configures; the service user reads the config and owns the state
        share_with_service(ep.config_dir, 0o750)
        share_with_service(config_file, 0o640)
        share_with_service(ep.state_dir, 0o750, owner_is_service=True)
        share_with_service(ep.info_file, 0o644, owner_is_service=True)
    return ep


def login(home: EndpointHome, name: str, client_id: str, secret: str) -> tuple[CredentialStore, bool]:
    """Store the identity encrypted; (store, False) when the same one is stored already."""
    ep = home.existing(name)
    if not client_id or not secret:
        raise EndpointError("both a client id and a secret are required")
    Identity(client_id, secret)  # validates the id
    store = CredentialStore(ep.credentials_file, home.key_file)
    try:
        if store.load() == (client_id, secret):
            return store, False
    except EndpointError:
        pass  # unreadable or from another key: overwrite it
    ids = service_ids() if home.system else None
    store.save(client_id, secret, group=ids[1] if ids else None)
    return store, True


# --- start ----------------------------------------------------------------------


def cleanup_stale(ep: EndpointDir) -> list[int]:
    """Remove what a crashed daemon left behind: its components and its pid file."""
    # The daemon itself is dead (its lock is free); its pid may since belong to
    # another process, so only its recorded, verified components are signalled.
    killed = kill_leftovers(ep)
    ep.pid_file.unlink(missing_ok=True)
    return killed


def owners_config(ep: EndpointDir, read: Callable[[Config], Any]) -> Any:
    """``read(config)``, with a ``config.py`` run by the endpoint's owner: root acting for a user (``sudo -E``)
    never runs the user's code with root's rights. ``read`` returns what JSON can carry."""
    path = ep.config_file()
    user = owner_of(ep)
    if path.suffix == ".py" and os.geteuid() == 0 and user != "root":
        return as_user(user, lambda: read(load_config(path)))
    return read(load_config(path))


def start(home: EndpointHome, name: str, progress: Progress, timeout: float = 60.0) -> dict:
    ep = home.existing(name)
    try:  # refuse a bad config here, with its file and line
        owners_config(ep, lambda config: config.engine.check_address())
    except ConfigError as exc:
        raise exc.located(file=str(ep.config_file())) from None
    units = installed_units(home, ep)
    if units:
        return _start_units(ep, units, progress)
    state = state_of(ep)
    if state is State.RUNNING:
        where = f" on host {host}" if (host := other_host(ep)) else ""
        raise AlreadyRunningError(f"endpoint {name!r} is already running (pid {daemon_pid(ep)}{where})")
    if state is State.DISCONNECTED and _runs_elsewhere(home, ep, progress):
        raise AlreadyRunningError(f"endpoint {name!r} is running on host {daemon_host(ep)} (pid {daemon_pid(ep)}), "
                                  "which shares this endpoint's directory: stop it there first, or use it as it is")
    if state is State.DISCONNECTED:
        progress("the endpoint was not stopped cleanly; cleaning up first")
        cleanup_stale(ep)
    identity = resolve_identity(CredentialStore(ep.credentials_file, home.key_file), name)
    line = _spawn_daemon(ep, identity, progress, timeout)
    if line.startswith("READY"):
        return {"name": name, "endpoint_id": ep.read_info().get("endpoint_id"), "message": line[6:]}
    if line.startswith("FAILED"):  # the daemon's verdict, with the code it exits with
        code, message = Readiness.parse_failed(line)
        raise with_exit_code(EndpointError(message), code)
    if UNREACHABLE in line:  # still retrying in the background, but the broker is the reason
        raise UnavailableError(line)
    raise EndpointError(line)


def _runs_elsewhere(home: EndpointHome, ep: EndpointDir, progress: Progress) -> bool:
    """The pid file names another host (a shared $HOME): is the daemon there alive? It answers a status command."""
    host = other_host(ep)
    if host is None:
        return False
    progress(f"the endpoint's pid file was written on host {host}; asking whether it still runs there")
    try:
        status(home, ep.name, timeout=5.0, assume_running=True)["broker"]
    except (EndpointError, KeyError):
        ep.pid_file.unlink(missing_ok=True)  # no answer: it died there; its processes there are not ours to kill
        ep.components_file.unlink(missing_ok=True)
        return False
    return True


def _start_units(ep: EndpointDir, units: Units, progress: Progress) -> dict:
    if not ep.credentials_file.exists():
        raise EndpointError(f"no stored credentials for endpoint {ep.name!r}: a service cannot see your shell's "
                            f"COMPUTE_CLIENT_* variables; run `compute-endpoint login {ep.name}` first")
    progress(f"starting {units.control} through systemd")
    start_units(units)
    return {"name": ep.name, "endpoint_id": ep.read_info().get("endpoint_id"), "message": "started by systemd"}


def _spawn_daemon(ep: EndpointDir, identity: Identity, progress: Progress, timeout: float) -> str:
    read_end, write_end = os.pipe()
    settings = DaemonSettings(ep.name, ready_fd=write_end, identity_stdin=True)
    proc, _ = spawn(settings.command(), ep.stderr_log("daemon"), environment_without_secrets(),
                    stdin=subprocess.PIPE, pass_fds=(write_end,), start_new_session=True, cwd=ep.state_dir)
    os.close(write_end)
    # The secret travels on the daemon's stdin, never in its argv or environment.
    assert proc.stdin is not None  # stdin=PIPE
    proc.stdin.write(json.dumps({"client_id": identity.client_id, "secret": identity.secret,
                                 "source": identity.source}).encode() + b"\n")
    proc.stdin.close()
    with os.fdopen(read_end) as pipe:
        return _await_ready(pipe, proc, ep, progress, timeout)


def _await_ready(pipe: TextIO, proc: subprocess.Popen, ep: EndpointDir, progress: Progress, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last = "starting"
    while time.monotonic() < deadline:
        readable, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        line = pipe.readline().strip()
        if not line:  # the daemon closed the pipe without a verdict: it died
            proc.wait(5)
            return f"the endpoint daemon exited during start-up ({_tail(ep)})"
        if line.startswith("READY"):
            return line
        if line.startswith("FAILED"):
            try:  # let it finish tearing down, so `list` agrees with what we report
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            return line
        last = line.removeprefix("PROGRESS ")
        progress(last)
    return (f"the endpoint is still starting after {timeout:g}s (last: {last}); it keeps trying in the "
            f"background: see `compute-endpoint status {ep.name}`, or stop it with `compute-endpoint stop {ep.name}`")


def _tail(ep: EndpointDir) -> str:
    for path in (ep.stderr_log("daemon"), ep.log_file("endpoint")):
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if lines:
            return f"last log line: {lines[-1][-300:]}"
    return f"see {ep.log_dir}"


# --- stop -----------------------------------------------------------------------


def stop(home: EndpointHome, name: str, progress: Progress, timeout: float | None = None) -> str:
    ep = home.existing(name)
    units = installed_units(home, ep)
    if units:
        progress(f"stopping {units.control} through systemd")
        stop_units(units)
        return f"endpoint {name!r} stopped"
    state = state_of(ep)
    elsewhere = other_host(ep)
    if elsewhere and (state is State.RUNNING or _runs_elsewhere(home, ep, progress)):
        raise EndpointError(f"endpoint {name!r} runs on host {elsewhere} (pid {daemon_pid(ep)}): run "
                            f"`compute-endpoint stop {name}` there")
    if elsewhere:
        return f"endpoint {name!r} had stopped on host {elsewhere} without cleaning up; removed its pid file"
    if state is State.DISCONNECTED:
        killed = cleanup_stale(ep)
        extra = f" and stopped {len(killed)} leftover processes" if killed else ""
        return f"endpoint {name!r} was not stopped cleanly; cleaned up its files{extra}"
    if state is not State.RUNNING:
        return f"endpoint {name!r} is not running"
    pid = daemon_pid(ep)
    if timeout is None:
        timeout = _stop_timeout(ep) + 20
    progress(f"stopping endpoint {name!r} (pid {pid})")
    if pid:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while lock_is_held(ep.lock_file) and time.monotonic() < deadline:
        time.sleep(0.1)
    if lock_is_held(ep.lock_file):
        progress(f"the endpoint did not stop within {timeout:g}s; killing it")
        terminate([pid] if pid else [], 2.0, signal.SIGKILL)
        cleanup_stale(ep)
    return f"endpoint {name!r} stopped"


def _stop_timeout(ep: EndpointDir) -> float:
    try:
        return owners_config(ep, lambda config: config.stop_timeout)
    except EndpointError:
        return 10.0


# --- list / status / delete -------------------------------------------------------


def list_endpoints(home: EndpointHome) -> list[dict]:
    rows = []
    for name in home.names():
        ep = home.endpoint(name)
        rows.append({"name": name, "status": state_of(ep).value, "endpoint_id": ep.read_info().get("endpoint_id")})
    return rows


def local_status(ep: EndpointDir) -> dict:
    info = ep.read_info()
    components = read_json(ep.components_file) or {}
    state = state_of(ep)
    running = state is State.RUNNING
    return {
        "name": ep.name,
        "endpoint_id": info.get("endpoint_id"),
        "owner": info.get("owner"),
        "state": state.value,
        "config_file": str(ep.config_file()),
        "log_dir": str(ep.log_dir),
        "pids": {
            "endpoint": daemon_pid(ep) if running else None,
            "interchange": components.get("interchange") if running else None,
            "managers": components.get("managers", []) if running else [],
        },
    }


def status(home: EndpointHome, name: str, timeout: float = 5.0, assume_running: bool = False) -> dict:
    """Local state, plus the running daemon's own account when it answers (asked even when not running here
    with ``assume_running``: a daemon on another host sharing the endpoint's directory)."""
    ep = home.existing(name)
    result = local_status(ep)
    units = installed_units(home, ep)
    if units:
        result["systemd"] = {unit: unit_state(unit) for unit in units.services}
    if result["state"] != State.RUNNING.value and not assume_running:
        return result
    try:
        url, tls_ca = owners_config(ep, lambda config: (config.broker.urls, config.broker.tls_ca))
        identity = resolve_identity(CredentialStore(ep.credentials_file, home.key_file), name)
        client = Client(url, identity.client_id, identity.secret, tls_ca)
        reply = client.send_command(result["endpoint_id"], CommandAction.STATUS, timeout=timeout, owner=result["owner"])
    except EndpointError as exc:
        if assume_running:
            raise
        result["live_status_error"] = str(exc)
        return result
    # The daemon's own state wins: Running, Degraded (every block failed: it says why), or Stopping.
    return {**result, **reply.data}


def delete(home: EndpointHome, name: str, progress: Progress, keep_queues: bool = False) -> str:
    ep = home.existing(name)
    stop(home, name, progress)
    info = ep.read_info()
    note = ""
    if info.get("endpoint_id") and not keep_queues:
        try:
            url, tls_ca = owners_config(ep, lambda config: (config.broker.urls, config.broker.tls_ca))
            identity = resolve_identity(CredentialStore(ep.credentials_file, home.key_file), name)
            client = Client(url, identity.client_id, identity.secret, tls_ca)
            deleted = client.delete_endpoint_queues(info["endpoint_id"], info.get("owner"))
            note = f"; removed {len(deleted)} queues from the broker"
        except EndpointError as exc:
            note = f"; its broker queues were left in place ({exc})"
    for directory in {ep.config_dir, ep.state_dir}:
        shutil.rmtree(directory, ignore_errors=True)
    return f"endpoint {name!r} deleted{note}"
