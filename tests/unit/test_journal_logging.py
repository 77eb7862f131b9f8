"""Under systemd, each log line reaches the journal at its record's priority, tracebacks included."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compute_endpoint.logs import JournalFormatter, logs_to_file, stderr_is_journal, syslog_priority


@pytest.mark.parametrize(("level", "priority"), [(logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                                                 (logging.INFO, 6), (logging.DEBUG, 7), (5, 7)])
def test_levels_map_to_syslog_priorities(level, priority):
    assert syslog_priority(level) == priority


def _stream_of_stderr() -> str:
    info = os.fstat(2)
    return f"{info.st_dev}:{info.st_ino}"


def test_stderr_is_the_journal_only_when_journal_stream_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("JOURNAL_STREAM", _stream_of_stderr())
    assert stderr_is_journal() and not logs_to_file(tmp_path / "x.log")
    other = os.stat(tmp_path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{other.st_dev}:{other.st_ino}")  # inherited: stderr goes elsewhere
    assert not stderr_is_journal() and logs_to_file(tmp_path / "x.log")
    monkeypatch.setenv("JOURNAL_STREAM", "not-a-stream")
    assert not stderr_is_journal()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not stderr_is_journal()


def test_a_traceback_stays_at_the_error_priority():
    try:
        raise ValueError("the cause")
    except ValueError:
        record = logging.LogRecord("compute_endpoint.x", logging.ERROR, __file__, 1, "it failed", None,
                                   sys.exc_info())
    lines = JournalFormatter("%(levelname)s %(name)s: %(message)s").format(record).split("\n")
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[0] == "<3>ERROR compute_endpoint.x: it failed"
    assert "<3>ValueError: the cause" in lines


def test_an_info_record_is_one_line_at_priority_6():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert JournalFormatter("%(message)s").format(record) == "<6>hello"


_CHILD = """
import logging, sys
from pathlib import Path
from compute_endpoint.logs import setup_logging
setup_logging(Path(sys.argv[1]))
logging.getLogger("compute_endpoint.test").warning("careful")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("compute_endpoint.test").exception("it broke")
"""


def _run_child(tmp_path: Path, journal: bool) -> tuple[str, str]:
    """A component logging with its stderr on a file standing in for the journal stream."""
    stderr_path, log_file = tmp_path / "stderr", tmp_path / "component.log"
    with open(stderr_path, "w") as stderr:
        info = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + (0 if journal else 1)}"}
        subprocess.run([sys.executable, "-c", _CHILD, str(log_file)], stderr=stderr, env=env, check=True, timeout=60)
    return stderr_path.read_text(), log_file.read_text() if log_file.exists() else ""


def test_a_component_whose_stderr_is_the_journal_writes_priorities_there(tmp_path):
    stderr, log = _run_child(tmp_path, journal=True)
    assert log == ""
    lines = stderr.splitlines()
    assert lines[0] == "<4>WARNING compute_endpoint.test: careful"
    assert lines[1] == "<3>ERROR compute_endpoint.test: it broke"
    assert all(line.startswith("<3>") for line in lines[1:]) and "<3>ZeroDivisionError: division by zero" in lines


def test_a_component_that_only_inherited_journal_stream_writes_its_file(tmp_path):
    stderr, log = _run_child(tmp_path, journal=False)
    assert stderr == ""
    assert "WARNING compute_endpoint.test" in log and "<" not in log.splitlines()[0]
