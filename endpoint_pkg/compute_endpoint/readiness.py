"""Telling whoever started a component how start-up is going, and that it is alive.

Two audiences: the `compute-endpoint start` command, which waits on a pipe
for progress lines and a final READY or FAILED line (``FAILED CODE message``:
the exit code the component ends with, see ``errors.ExitCode``, which the
command exits with too); and systemd, which
waits for READY=1 on its notify socket (Type=notify) and expects WATCHDOG=1
pings while WatchdogSec is set.
"""

import os
import time

import sdnotify


def watchdog_interval() -> float | None:
    """How often to ping systemd's watchdog (a third of WatchdogSec), or None when it is off."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1e6 / 3


class Readiness:
    def __init__(self, fd: int | None = None):
        self._pipe = os.fdopen(fd, "w", buffering=1) if fd is not None else None
        self._systemd = sdnotify.SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None
        self._watchdog_every = watchdog_interval()
        self._next_ping = 0.0

    def _line(self, text: str) -> None:
        if self._pipe is None:
            return
        try:
            self._pipe.write(text.replace("\n", " ") + "\n")
        except (BrokenPipeError, ValueError):  # the starter gave up waiting; carry on regardless
            self._pipe = None

    def progress(self, text: str) -> None:
        self._line(f"PROGRESS {text}")
        self._notify(f"STATUS={text}")

    def ready(self, text: str) -> None:
        self._line(f"READY {text}")
        self._close_pipe()
        self._notify(f"READY=1\nSTATUS={text}")

    def failed(self, text: str, code: int = 1) -> None:
        """Start-up failed; the component is to exit with ``code`` (an ``ExitCode``)."""
        self._line(f"FAILED {int(code)} {text}")
        self._close_pipe()
        self._notify(f"STATUS={text}\nEXIT_STATUS={int(code)}")

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")

    def tick(self) -> None:
        """Call from a main loop: pings the watchdog when due, so a hung loop gets restarted."""
        if self._watchdog_every is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + self._watchdog_every
            self.watchdog()

    @staticmethod
    def parse_failed(line: str) -> tuple[int, str]:
        """(exit code, message) of a ``FAILED`` line (a line without a code, from an older daemon: 1)."""
        rest = line.removeprefix("FAILED").strip()
        code, _, message = rest.partition(" ")
        if code.isdigit():
            return int(code), message
        return 1, rest

    def stopping(self, text: str = "stopping") -> None:
        self._notify(f"STOPPING=1\nSTATUS={text}")

    def reloading(self) -> None:
        self._notify("RELOADING=1")

    def _notify(self, message: str) -> None:
        if self._systemd is not None:
            self._systemd.notify(message)

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.close()
            except OSError:
                pass
            self._pipe = None
