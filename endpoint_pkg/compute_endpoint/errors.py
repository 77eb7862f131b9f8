"""The error type every user-facing failure is raised as.

The CLI prints ``str(error)`` once and exits non-zero; tracebacks are shown
only with ``--debug``. Messages say what was wrong and what to do about it.
"""


class EndpointError(Exception):
    """A failure the user can act on; the message is written for them."""

    exit_code = 1


class NotFoundError(EndpointError):
    """A named endpoint, file or broker object does not exist."""

    exit_code = 2
