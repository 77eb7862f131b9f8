"""`compute-endpoint serve ...`: one component in the foreground, as the systemd units run them."""

from typing import Annotated

import typer

from .. import unit_services
from ..config import load_config
from ..endpoint import main as daemon_main
from ..errors import EndpointError
from ..home import EndpointHome
from ..readiness import Readiness

serve_app = typer.Typer(help="Run one component in the foreground (what the systemd units run).",
                        no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Endpoint name.")]


def _endpoint(name: str):
    ep = EndpointHome.resolve().existing(name)
    return ep, load_config(ep.config_file())


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


@serve_app.command("endpoint")
def serve_endpoint(name: NameArg):
    """The endpoint daemon, with its interchange and managers run by their own units."""
    readiness = Readiness()
    try:
        _exit(daemon_main.run(name, readiness, components="units", log_to_stderr=True))
    except EndpointError as exc:
        readiness.failed(str(exc))
        raise


@serve_app.command("interchange")
def serve_interchange(name: NameArg):
    """The interchange of endpoint NAME (listens on engine.address:engine.worker_port)."""
    ep, config = _endpoint(name)
    _exit(unit_services.run_interchange(ep, config))


@serve_app.command("manager")
def serve_manager(name: NameArg):
    """A manager with engine.max_workers_per_node workers, for the interchange of endpoint NAME."""
    ep, config = _endpoint(name)
    _exit(unit_services.run_manager(ep, config))
