"""What every command shares: the home it acts on, endpoint name-or-id arguments, and error handling."""

import os
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from ..errors import EXIT_CODE_HELP, EndpointError, ExitCode
from ..paths import EndpointHome
from . import output

P = ParamSpec("P")
R = TypeVar("R")

state = {"debug": False}

NameArg = Annotated[str, typer.Argument(help="Endpoint name, or its endpoint id (UUID).", show_default=True)]
# configure: a name for an endpoint that does not exist yet.
NewNameArg = Annotated[str, typer.Argument(help="Endpoint name.", show_default=True)]


def exit_codes_epilog() -> str:
    """The exit codes, for the end of `--help` (typer keeps the blank lines of an epilog as paragraphs)."""
    lines = "\n".join(f"{int(code):>3}  {meaning}" for code, meaning in EXIT_CODE_HELP.items())
    return f"Exit codes (BSD sysexits, as upstream's):\n\n{lines}"


def use_config_dir(config_dir: Path | None) -> None:
    """--config-dir: the endpoints under DIR, for this command and the daemons it starts (they inherit it)."""
    if config_dir is None:
        return
    os.environ["COMPUTE_ENDPOINT_HOME"] = str(config_dir.expanduser().absolute())
    # An explicit directory wins over the packaged system-wide layout the environment may select.
    os.environ.pop("COMPUTE_ENDPOINT_SYSTEM", None)


def home() -> EndpointHome:
    return EndpointHome.resolve()


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command body; print an EndpointError once and exit with its code (an unexpected error: 70).

    A ``name`` argument may be an endpoint's name or its id: the body sees the name.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            if isinstance(kwargs.get("name"), str) and not getattr(fn, "creates_endpoint", False):
                kwargs["name"] = home().name_of(str(kwargs["name"]))
            return fn(*args, **kwargs)
        except EndpointError as exc:
            if state["debug"]:
                traceback.print_exc()
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if state["debug"]:
                traceback.print_exc()
            output.error(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
            raise typer.Exit(ExitCode.INTERNAL) from None

    return wrapper


def creates_endpoint(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a command whose NAME is a new endpoint's (not looked up as a name or id)."""
    fn.creates_endpoint = True  # type: ignore[attr-defined]
    return fn
