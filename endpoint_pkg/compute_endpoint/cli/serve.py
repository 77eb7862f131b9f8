"""`compute-endpoint serve ...`: one component in the foreground, as the systemd units run them."""

import sys
import traceback
from typing import Annotated

import typer

from ..config import Config, load_config
from ..endpoint import main as daemon_main
from ..errors import EndpointError, ExitCode
from ..interchange import main as interchange_main
from ..manager import main as manager_main
from ..paths import EndpointDir, EndpointHome
from ..readiness import Readiness

serve_app = typer.Typer(help="Run one component in the foreground (what the systemd units run).",
                        no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Endpoint name.")]


def _endpoint(name: str) -> tuple[EndpointDir, Config]:
    ep = EndpointHome.resolve().existing(name)
    config = load_config(ep.config_file())
    config.engine.check_address()
    return ep, config


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


@serve_app.command("endpoint")
def serve_endpoint(name: NameArg) -> None:
    """The endpoint daemon, with its interchange and managers run by their own units."""
    readiness = Readiness()
    settings = daemon_main.DaemonSettings(name, log_to_stderr=True, components="units")
    try:
        _exit(daemon_main.run(settings, readiness))
    except EndpointError as exc:  # systemd sees the code: RestartPreventExitStatus= stops a futile restart loop
        readiness.failed(str(exc), exc.exit_code)
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # a bug: the traceback goes to the journal, and systemd sees 70
        readiness.failed(f"internal error: {type(exc).__name__}: {exc}", ExitCode.INTERNAL)
        traceback.print_exc()
        raise typer.Exit(ExitCode.INTERNAL) from None


@serve_app.command("interchange")
def serve_interchange(name: NameArg) -> None:
    """The interchange of endpoint NAME (listens on engine.address:engine.worker_port)."""
    _exit(interchange_main.serve_endpoint(*_endpoint(name)))


@serve_app.command("manager")
def serve_manager(name: NameArg) -> None:
    """A manager with engine.max_workers_per_node workers, for the interchange of endpoint NAME."""
    _exit(manager_main.serve_endpoint(*_endpoint(name)))
