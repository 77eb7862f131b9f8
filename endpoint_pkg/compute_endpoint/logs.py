"""Logging setup shared by every component.

Under systemd (JOURNAL_STREAM set) or with no log file, records go to stderr
and the journal stamps them; otherwise to a rotating file in the endpoint's
log directory.
"""

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from .paths import create_private

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s[%(process)d] %(message)s"
_JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"


def logs_to_file(log_file: Path | None) -> bool:
    """Whether setup_logging writes to ``log_file`` (else stderr, which systemd sends to the journal)."""
    return log_file is not None and not os.environ.get("JOURNAL_STREAM")


def setup_logging(log_file: Path | None, level: str = "INFO") -> None:
    """Send this process's records to ``log_file``, or to stderr (and so the journal)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if not logs_to_file(log_file):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_JOURNAL_FORMAT))
    else:
        assert log_file is not None
        create_private(log_file)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=20 * 1024 * 1024, backupCount=5)
        handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # pika logs every connection step at INFO; its warnings are what matter.
    logging.getLogger("pika").setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)
