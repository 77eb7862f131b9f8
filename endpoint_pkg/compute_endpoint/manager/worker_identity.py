"""Who workers run as: the manager's own user, or an unprivileged one that cannot read the endpoint's files."""

import os
import pwd
import shutil

from ..errors import EndpointError

# Variables of the manager's own service that a worker must not use (it is not the unit's main process).
_SERVICE_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY", "LISTEN_FDS",
                 "LISTEN_PID")


def worker_env(env: dict[str, str] | None, identity: "WorkerIdentity | None") -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    for name in _SERVICE_ONLY:
        base.pop(name, None)
    if identity is not None:
        base.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
    return base


class WorkerIdentity:
    """The unprivileged user workers run as, when the manager is told one (the packaged units: compute-worker).

    ``setpriv`` switches to it before the worker starts, with no supplementary
    groups and no capabilities left, so a task cannot read what the manager's
    own user can (the endpoint's config, keys and state), nor signal it.
    """

    _CAPS = {"CAP_SETGID": 6, "CAP_SETUID": 7}

    def __init__(self, name: str):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise EndpointError(f"cannot run workers as {name!r}: there is no such user (the package creates "
                                "compute-worker; create it, or unset the worker user)") from None
        missing = [cap for cap, bit in self._CAPS.items() if not _effective_capabilities() >> bit & 1]
        if missing and os.geteuid() != 0:
            raise EndpointError(f"cannot run workers as {name!r}: this manager lacks {' and '.join(missing)} (the "
                                "packaged compute-manager@ unit grants them; a manager run by hand cannot switch)")
        self.name = name
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.home = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"  # workers start there
        self.setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"

    def wrap(self, command: list[str]) -> list[str]:
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--inh-caps=-all",
                "--ambient-caps=-all", "--", *command]


def _effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0
