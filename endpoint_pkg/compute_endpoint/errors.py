"""The error type every user-facing failure is raised as, and the exit codes they map to.

The CLI prints ``str(error)`` once and exits with the error's ``exit_code``;
tracebacks are shown only with ``--debug``. Messages say what was wrong and
what to do about it. The codes are BSD sysexits(3), as upstream's CLI uses,
so that scripts and systemd (``RestartPreventExitStatus=``) can tell an
error a retry may fix from one that only the operator can.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # any other failure the user can act on
    NOT_FOUND = 2  # no such endpoint, file or broker object
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the broker cannot be reached
    INTERNAL = 70  # EX_SOFTWARE: an unexpected exception (a bug: rerun with --debug and report it)
    ALREADY_RUNNING = 73  # EX_CANTCREAT: the endpoint already runs (here or on a host sharing its directory)
    NO_PERMISSION = 77  # EX_NOPERM: the broker refused the identity, or a file may not be read or written
    BAD_CONFIG = 78  # EX_CONFIG: the config (or a value given for it) is wrong


# What each code means and what to do, for `--help` and the README.
EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "failed; the message says why",
    ExitCode.NOT_FOUND: "no such endpoint (name or id) or file",
    ExitCode.UNAVAILABLE: "the broker cannot be reached: check broker.url and that RabbitMQ runs",
    ExitCode.INTERNAL: "internal error: rerun with --debug and report the traceback",
    ExitCode.ALREADY_RUNNING: "the endpoint is already running",
    ExitCode.NO_PERMISSION: "permission denied: by the broker (credentials, grants) or on a file",
    ExitCode.BAD_CONFIG: "the configuration (or the identity to use) is missing or invalid: fix what is named",
}


class EndpointError(Exception):
    """A failure the user can act on; the message is written for them."""

    exit_code: int = ExitCode.FAILED


class NotFoundError(EndpointError):
    """A named endpoint, file or broker object does not exist."""

    exit_code = ExitCode.NOT_FOUND


class AlreadyRunningError(EndpointError):
    """The endpoint runs already: starting it again cannot help."""

    exit_code = ExitCode.ALREADY_RUNNING


class NoPermissionError(EndpointError):
    """The broker refused the identity or its grants, or a file may not be read or written."""

    exit_code = ExitCode.NO_PERMISSION


class UnavailableError(EndpointError):
    """The broker (or another service the endpoint needs) cannot be reached; it may come back."""

    exit_code = ExitCode.UNAVAILABLE


def with_exit_code(error: EndpointError, code: int) -> EndpointError:
    """``error``, exiting with ``code`` (a failure reported by another process, with its code)."""
    error.exit_code = code
    return error


class Verdict(str):
    """A message for the user that also says which exit code it ends a process with.

    Used where a message travels as a plain string through callbacks (the AMQP
    agent's ``on_fatal``) and the code must travel with it.
    """

    exit_code: int

    def __new__(cls, text: str, exit_code: int) -> "Verdict":
        verdict = super().__new__(cls, text)
        verdict.exit_code = exit_code
        return verdict


def exit_code_of(message: str, default: int = ExitCode.FAILED) -> int:
    """The exit code a message carries (see ``Verdict``), else ``default``."""
    return int(getattr(message, "exit_code", default))
