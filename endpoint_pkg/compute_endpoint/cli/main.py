"""The `compute-endpoint` command. Each command parses, calls the library, prints."""

import sys
from getpass import getpass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import __version__, control, queue_upgrade, systemctl
from ..config import Broker, ConfigError, load_config
from ..config.describe import describe
from ..config.model import DEFAULT_BROKER_URL
from ..curve import ENDPOINT, MANAGER, KeyStore
from . import output
from .common import NameArg, NewNameArg, command, creates_endpoint, exit_codes_epilog, state, use_config_dir
from .common import home as _home
from .logout import logout
from .logs import logs
from .serve import serve_app
from .watch import watch_status

app = typer.Typer(
    name="compute-endpoint",
    help="Run and manage compute endpoints: services that execute Python functions sent over RabbitMQ.",
    epilog=exit_codes_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        output.out.print(f"compute-endpoint {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    config_dir: Annotated[Optional[Path], typer.Option(
        "--config-dir", "-c", file_okay=False,
        help="The directory of the endpoints to act on (default: $COMPUTE_ENDPOINT_HOME or ~/.compute_endpoint); "
             "endpoints started here keep using it.")] = None,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    state["debug"] = debug
    use_config_dir(config_dir)


@app.command()
@command
@creates_endpoint
def configure(
    name: NewNameArg = "default",
    broker_url: Annotated[Optional[str], typer.Option(
        "--broker-url", help="Broker URL without credentials, e.g. amqp://127.0.0.1:5672/%2F")] = None,
) -> None:
    """Create an endpoint's directory and a default config.yaml."""
    ep = control.configure(_home(), name, broker_url)
    output.out.print(f"Created profile for endpoint named <{name}>\n")
    output.out.print(f"    Configuration file: {ep.config_file()}\n")
    try:
        Broker(url=broker_url or DEFAULT_BROKER_URL)
    except ConfigError as exc:
        output.err.print(f"Warning: broker.url: {exc.detail}. `start` refuses it until you do.\n")
    output.out.print(f"Next: store broker credentials with `compute-endpoint login {name}` (or export "
                     f"COMPUTE_CLIENT_ID and COMPUTE_CLIENT_SECRET), then `compute-endpoint start {name}`.")


@app.command()
@command
def login(
    name: NameArg = "default",
    client_id: Annotated[Optional[str], typer.Option(
        "--client-id", help="Broker identity (user name). Prompted for when omitted.")] = None,
) -> None:
    """Store broker credentials for an endpoint, encrypted. The secret is read from a prompt or stdin."""
    if client_id is None:
        client_id = typer.prompt("Client id (broker user)") if sys.stdin.isatty() else sys.stdin.readline().strip()
    secret = getpass("Client secret: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    store, changed = control.login(_home(), name, client_id, secret)
    if changed:
        output.out.print(f"Stored credentials for {client_id!r} in {store.path} (key: {store.key_file})")
    else:
        output.out.print(f"Credentials for {client_id!r} in {store.path} unchanged")


@app.command()
@command
def start(
    name: NameArg = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the endpoint to be running.")] = 60.0,
) -> None:
    """Start an endpoint in the background; returns once it is registered and consuming tasks."""
    info = control.start(_home(), name, output.progress, timeout)
    output.out.print(f"Starting endpoint; registered with id: {info['endpoint_id']}")
    output.out.print(f"Endpoint {name!r} is running.")


@app.command()
@command
def stop(
    name: NameArg = "default",
    timeout: Annotated[Optional[float], typer.Option(
        help="Seconds to wait before killing it (default: the config's stop_timeout + 20).")] = None,
) -> None:
    """Stop an endpoint and everything it started. Safe to repeat; cleans up after a crash."""
    output.out.print(control.stop(_home(), name, output.progress, timeout))


@app.command()
@command
def restart(name: NameArg = "default") -> None:
    """Stop the endpoint (if running) and start it again."""
    home = _home()
    output.out.print(control.stop(home, name, output.progress))
    info = control.start(home, name, output.progress)
    output.out.print(f"Endpoint {name!r} is running with id {info['endpoint_id']}.")


@app.command("list")
@command
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the endpoints configured on this machine, with their state and id."""
    rows = control.list_endpoints(_home())
    if as_json:
        output.print_json(rows)
    elif not rows:
        output.out.print("No endpoints configured. Create one with `compute-endpoint configure`.")
    else:
        output.out.print(output.endpoints_table(rows))


@app.command()
@command
def status(
    name: NameArg = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh a live view until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """Show an endpoint's state, queues, managers, workers, tasks, blocks, container workers and process ids;
    with --watch, a live view of its queues, tasks, task rate, managers and blocks."""
    if watch:
        watch_status(_home(), name, interval)
        return
    data = control.status(_home(), name)
    if as_json:
        output.print_json(data)
        return
    output.out.print(output.status_table(data))
    if (data.get("provider") or {}).get("blocks"):
        output.out.print(output.blocks_table(data["provider"]))
    containers = output.containers_table(data.get("manager_details") or [])
    if containers is not None:
        output.out.print(containers)


@app.command()
@command
def delete(
    name: NameArg = "default",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    keep_queues: Annotated[bool, typer.Option(help="Leave the endpoint's queues on the broker.")] = False,
) -> None:
    """Stop an endpoint, remove its files and (unless --keep-queues) its queues on the broker."""
    home = _home()
    home.existing(name)
    if not yes and not typer.confirm(f"Delete endpoint {name!r} and any tasks queued for it?"):
        raise typer.Abort()
    output.out.print(control.delete(home, name, output.progress, keep_queues))


@app.command("migrate-queues")
@command
def migrate_queues(name: NameArg = "default") -> None:
    """Move a stopped endpoint's queues, messages and all, to the type and delivery limit its config asks for
    (classic queues kept after an upgrade become quorum queues); safe to run again if interrupted."""
    moved = queue_upgrade.migrate_queues(_home(), name, output.progress)
    output.out.print(output.migration_table(moved))


@app.command("enable-on-boot")
@command
def enable_on_boot(name: NameArg = "default") -> None:
    """Make a per-user endpoint a systemd service that starts at boot (needs root: sudo -E)."""
    home = _home()
    ep = home.existing(name)
    unit = systemctl.enable_on_boot(home, ep, control.owners_config(ep, lambda config: config.stop_timeout))
    output.out.print(f"Wrote and enabled {unit}; `compute-endpoint start {name}` now starts it through systemd.")


@app.command("disable-on-boot")
@command
def disable_on_boot(name: NameArg = "default") -> None:
    """Stop and remove the systemd service that `enable-on-boot` made (needs root: sudo -E)."""
    home = _home()
    output.out.print(systemctl.disable_on_boot(home, home.existing(name)))


@app.command("check-config")
@command
def check_config(path: Annotated[str, typer.Argument(help="A config.yaml or config.py to validate.")]) -> None:
    """Validate a config file without starting anything, and say what it means; exit code 0 when it is valid.

    An address the config names that this host does not have (an interface of the login node it is
    written for) is a warning here; `start` refuses it.
    """
    config = load_config(path)
    output.out.print(f"{path}: valid")
    for label, text in describe(config):
        output.out.print(f"  {label:<9} {text}", highlight=False, markup=False)


keys_app = typer.Typer(help="CurveZMQ keys of the link between the interchange and managers on other hosts.",
                       no_args_is_help=True)
KeyArg = Annotated[str, typer.Argument(help="A public key: the 40 Z85 characters `keys manager` prints.")]
LabelArg = Annotated[str, typer.Argument(help="A name for the key, such as the manager's host name.")]


def _key_store(name: str) -> KeyStore:
    home = _home()
    return KeyStore(home.existing(name).keys_dir, system=home.system)


@keys_app.command("endpoint")
@command
def keys_endpoint(
    name: NameArg = "default",
    set_key: Annotated[Optional[str], typer.Option(
        "--set", help="On a manager host: install the endpoint's public key, as `keys endpoint` printed it there.")
    ] = None,
) -> None:
    """Print the endpoint's public key (making its pair if missing); with --set, install it on a manager host."""
    store = _key_store(name)
    if set_key is not None:
        changed = store.set_endpoint_public_key(set_key)
        output.out.print("installed" if changed else "unchanged")
        return
    installed = store.endpoint_public_key()
    if installed and store.pair(ENDPOINT) is None:  # a manager host: the key installed with --set
        output.out.print(installed)
        return
    pair, made = store.ensure_pair(ENDPOINT)
    if made:
        output.err.print("made the endpoint's key pair")
    output.out.print(pair.public)


@keys_app.command("manager")
@command
def keys_manager(name: NameArg = "default") -> None:
    """Print this host's manager public key for endpoint NAME, making the pair if missing."""
    pair, made = _key_store(name).ensure_pair(MANAGER)
    if made:
        output.err.print("made this host's manager key pair")
    output.out.print(pair.public)


@keys_app.command("authorize")
@command
def keys_authorize(name: NameArg, label: LabelArg, key: KeyArg) -> None:
    """Let managers holding KEY's secret connect (a running interchange picks it up within a second)."""
    changed = _key_store(name).authorize(label, key)
    output.out.print(f"authorized {label}" if changed else "unchanged")


@keys_app.command("revoke")
@command
def keys_revoke(name: NameArg, label: LabelArg) -> None:
    """Stop admitting the key called LABEL; managers using it are dropped and their tasks run elsewhere."""
    changed = _key_store(name).revoke(label)
    output.out.print(f"revoked {label}" if changed else f"no key called {label!r}; unchanged")


@keys_app.command("list")
@command
def keys_list(
    name: NameArg = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The manager keys the endpoint's interchange admits."""
    authorized = _key_store(name).authorized()
    if as_json:
        output.print_json(authorized)
    elif not authorized:
        output.out.print(f"No manager keys are authorized for {name}. Managers on this host need none.")
    else:
        output.out.print(output.keys_table(authorized))


def main() -> None:
    app()


app.command("logs")(command(logs))
app.command("logout")(command(logout))
app.add_typer(serve_app, name="serve")
app.add_typer(keys_app, name="keys")


if __name__ == "__main__":
    main()
