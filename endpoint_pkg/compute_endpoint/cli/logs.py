"""`compute-endpoint logs`: an endpoint's log, from its files or, for systemd units, from the journal."""

import os
import subprocess
import sys
import time
from collections import deque
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import NotFoundError
from ..paths import EndpointDir
from ..systemctl import Units, installed_units
from .common import NameArg
from .common import home as resolve_home


class Component(StrEnum):
    ENDPOINT = "endpoint"
    INTERCHANGE = "interchange"
    MANAGER = "manager"


def unit_of(units: Units, component: Component) -> str | None:
    """The unit whose journal holds ``component``'s log; None when it writes its own files.

    The packaged units run one component each; a per-user endpoint enabled on boot runs as one unit, whose
    interchange and managers write files as they do when started by hand.
    """
    by_component = {Component.ENDPOINT: units.daemon}
    for service in units.services:
        for part in (Component.INTERCHANGE, Component.MANAGER):
            if service.startswith(f"compute-{part}@"):
                by_component[part] = service
    return by_component.get(component)


def journal_command(unit: str, lines: int, follow: bool) -> list[str]:
    return ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", *(["-f"] if follow else [])]


def log_files(ep: EndpointDir, component: Component) -> list[Path]:
    """The log files ``component`` writes (managers: one per block), oldest first."""
    if component is Component.MANAGER:
        files = [p for p in ep.log_dir.glob("manager-*.log") if not p.name.endswith(".stderr.log")]
        return sorted(files, key=lambda p: p.stat().st_mtime)
    path = ep.log_file(component.value)
    return [path] if path.exists() else []


def last_lines(path: Path, count: int) -> list[str]:
    with open(path, errors="replace") as handle:
        return list(deque(handle, maxlen=count)) if count > 0 else []


def follow_files(paths: list[Path], poll: float = 0.5) -> None:
    """Print what is appended to ``paths`` until Ctrl-C (a rotated file is reopened from its start)."""
    handles = {path: open(path, errors="replace") for path in paths}  # noqa: SIM115 (closed below)
    for handle in handles.values():
        handle.seek(0, os.SEEK_END)
    try:
        while True:
            quiet = True
            for path, handle in handles.items():
                for line in handle:
                    quiet = False
                    sys.stdout.write(_labelled(path, line, len(paths)))
                if path.exists() and path.stat().st_size < handle.tell():  # rotated or truncated
                    handle.close()
                    handles[path] = open(path, errors="replace")  # noqa: SIM115
            sys.stdout.flush()
            if quiet:
                time.sleep(poll)
    except KeyboardInterrupt:
        pass
    finally:
        for handle in handles.values():
            handle.close()


def _labelled(path: Path, line: str, files: int) -> str:
    return f"{path.stem}: {line}" if files > 1 else line


def logs(
    name: NameArg = "default",
    component: Annotated[Component, typer.Option(
        "--component", "-C", help="Whose log: the endpoint daemon, its interchange, or its managers.")
    ] = Component.ENDPOINT,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to print.")] = 50,
) -> None:
    """Print the end of an endpoint's log: from its log files, or from the journal when systemd runs it."""
    home = resolve_home()
    ep = home.existing(name)
    units = installed_units(home, ep)
    unit = unit_of(units, component) if units else None
    if unit is not None:
        try:  # journalctl says itself when the user may not read the system journal
            code = subprocess.call(journal_command(unit, lines, follow))
        except KeyboardInterrupt:
            code = 0
        except FileNotFoundError:
            raise NotFoundError(f"{unit} logs to the journal, and journalctl is not installed") from None
        raise typer.Exit(code)
    paths = log_files(ep, component)
    if not paths:
        raise NotFoundError(f"endpoint {name!r} has no {component.value} log yet (looked in {ep.log_dir}); it is "
                            f"written once the endpoint has been started: `compute-endpoint start {name}`")
    for path in paths:
        for line in last_lines(path, lines):
            sys.stdout.write(_labelled(path, line, len(paths)))
    sys.stdout.flush()
    if follow:
        follow_files(paths)
