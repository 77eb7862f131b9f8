"""`compute-endpoint logout`: forget stored broker credentials."""

import os
from typing import Annotated, Optional

import typer

from ..credentials import CredentialStore
from ..errors import EndpointError
from ..paths import EndpointHome
from . import output
from .common import home as resolve_home


def _forget(home: EndpointHome, name: str) -> str | None:
    """Remove endpoint ``name``'s stored credentials; what was removed, or None when nothing was stored."""
    ep = home.existing(name)
    store = CredentialStore(ep.credentials_file, home.key_file)
    try:
        stored = store.load()
    except EndpointError:
        stored = None  # unreadable (another key, damaged): removed all the same
    if not store.remove():
        return None
    who = f" of {stored[0]!r}" if stored else ""
    return f"Removed the stored credentials{who} for endpoint {name!r} ({store.path})"


def logout(
    name: Annotated[Optional[str], typer.Argument(
        help="Endpoint name or id (default: default).", show_default=False)] = None,
    all_endpoints: Annotated[bool, typer.Option(
        "--all", help="Every endpoint's stored credentials, and the key they were encrypted with.")] = False,
) -> None:
    """Remove the broker credentials `login` stored. A running endpoint keeps its connection until it stops;
    starting it again needs `login` (or COMPUTE_CLIENT_ID and COMPUTE_CLIENT_SECRET)."""
    home = resolve_home()
    if all_endpoints and name is not None:
        raise EndpointError("give an endpoint or --all, not both")
    names = home.names() if all_endpoints else [home.name_of(name or "default")]
    removed = [line for line in (_forget(home, each) for each in names) if line]
    if all_endpoints and not os.environ.get("COMPUTE_ENDPOINT_KEY_FILE") and home.key_file.exists():
        home.key_file.unlink()
        removed.append(f"Removed the credential key {home.key_file}")
    for line in removed:
        output.out.print(line)
    if not removed:
        which = "any endpoint" if all_endpoints else f"endpoint {names[0]!r}"
        output.out.print(f"No credentials are stored for {which}; nothing to remove.")
