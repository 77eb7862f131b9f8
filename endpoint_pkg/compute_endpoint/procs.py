"""Process helpers: parent-death signals, liveness checks, and careful killing."""

import ctypes
import ctypes.util
import errno
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import EndpointError
from .paths import create_private

_PR_SET_PDEATHSIG = 1
_libc = None


def die_with_parent(expected_parent: int | None, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` when our parent dies.

    Components started by the endpoint must not outlive it (a crashed endpoint
    leaves nothing running that a fresh start would fight with). If the parent
    already died before this call, exit now.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if expected_parent and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_ours(pid: int, marker: str) -> bool:
    """True if ``pid`` is alive and its command line contains ``marker``.

    Pids from a crashed run may have been reused by unrelated processes; we only
    signal a pid whose command line still looks like the component we started.
    """
    return pid_alive(pid) and marker in cmdline(pid)


Process = int | subprocess.Popen  # a pid, or a child we started (which we also reap)


def terminate(processes: Sequence[Process], timeout: float, sig: int = signal.SIGTERM) -> list[int]:
    """Send ``sig`` to each process, wait up to ``timeout``, SIGKILL survivors; return the killed pids."""
    live = [p for p in processes if _alive(p)]
    for process in live:
        _signal(_pid(process), sig)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [p for p in live if _alive(p)]
    for process in live:
        _signal(_pid(process), signal.SIGKILL)
    for process in live:
        if isinstance(process, subprocess.Popen):
            process.wait()
    return [_pid(p) for p in live]


def _alive(process: Process) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is None
    return pid_alive(process)


def _pid(process: Process) -> int:
    return process.pid if isinstance(process, subprocess.Popen) else process


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def spawn(argv: list[str], stderr_log: Path, env: dict[str, str],
          **popen: Any) -> tuple[subprocess.Popen, int]:
    """Start a component in the background, its stderr appended to ``stderr_log``.

    Returns the process and the offset in ``stderr_log`` where its own output
    starts (to quote only this run's last words if it dies at start-up).
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    with open(create_private(stderr_log), "ab") as stderr:
        offset = stderr.tell()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr, **popen)
    return process, offset


def describe_exit(code: int) -> str:
    """'exit code 3' or 'killed by signal SIGSEGV' from a Popen return code."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def as_user(user: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` in a child process that runs as ``user``; its JSON-able value, or its error re-raised.

    For root acting on a user's behalf: a user's ``config.py`` is the user's
    code, and runs with the user's rights, never root's.
    """
    entry = pwd.getpwnam(user)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, compute, report, and leave without running any cleanup
        os.close(read_end)
        try:
            os.initgroups(user, entry.pw_gid)
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
            report = {"value": compute()}
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            report = {"error": str(exc) or type(exc).__name__}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(report, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    report = json.loads(text) if text else {"error": f"the process run as {user} died"}
    if "error" in report:
        raise EndpointError(report["error"])
    return report["value"]
