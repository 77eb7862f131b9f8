"""Logging setup shared by every component.

When stderr is the journal (systemd's ``JOURNAL_STREAM`` names it) or there
is no log file, records go to stderr; otherwise to a rotating file in the
endpoint's log directory. To the journal each line starts with its syslog
priority (``<3>`` for an error: sd-daemon(3)'s convention), every line of a
multi-line record included, so `journalctl -p err` shows a whole traceback.
"""

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from .paths import create_private

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s[%(process)d] %(message)s"
_JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def stderr_is_journal() -> bool:
    """Whether file descriptor 2 is the stream systemd connected to the journal.

    ``JOURNAL_STREAM`` (``DEVICE:INODE``) is inherited by children whose stderr
    goes elsewhere (a component's stderr log), so it is compared with fd 2.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(2)
    except OSError:
        return False
    return info.st_dev == int(device) and info.st_ino == int(inode)


class JournalFormatter(logging.Formatter):
    """Prefix every line of a record with ``<N>``: journald makes an entry of each line, all at the right level."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def logs_to_file(log_file: Path | None) -> bool:
    """Whether setup_logging writes to ``log_file`` (else stderr, which systemd sends to the journal)."""
    return log_file is not None and not stderr_is_journal()


def setup_logging(log_file: Path | None, level: str = "INFO") -> None:
    """Send this process's records to ``log_file``, or to stderr (and so the journal)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if not logs_to_file(log_file):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter(_JOURNAL_FORMAT) if stderr_is_journal()
                             else logging.Formatter(_JOURNAL_FORMAT))
    else:
        assert log_file is not None
        create_private(log_file)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=20 * 1024 * 1024, backupCount=5)
        handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # pika logs every connection step at INFO; its warnings are what matter.
    logging.getLogger("pika").setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)
