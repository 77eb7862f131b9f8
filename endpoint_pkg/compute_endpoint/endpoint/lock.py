"""The daemon's lock file: held (flock) for exactly as long as the daemon lives.

A lock cannot go stale: the kernel drops it when the process dies, however it
dies. The pid file beside it is what tells a crash (pid file left, lock free)
from a clean stop (both gone).
"""

import fcntl
import os
from pathlib import Path


class DaemonLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_is_held(path: Path) -> bool:
    if not path.exists():
        return False
    probe = DaemonLock(path)
    if probe.acquire():
        probe.release()
        return False
    return True
