"""What a running endpoint can take from a changed config without dropping tasks."""

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, load_config
from ..errors import EndpointError

log = logging.getLogger(__name__)

# Read afresh on every use by the daemon, so changing them is safe while running.
RELOADABLE = ("display_name", "heartbeat_period", "heartbeat_threshold", "idle_heartbeats_soft",
              "allowed_functions", "allowed_submitters", "max_payload_bytes", "stop_timeout", "log_level", "debug")


@dataclass
class ReloadChanges:
    applied: list[str] = field(default_factory=list)
    need_restart: list[str] = field(default_factory=list)


def reload_file(running: Config, path: Path) -> None:
    """Re-read the config at ``path``, apply what is safe, and log what needs a restart."""
    try:
        changes = apply_reload(running, load_config(path))
    except EndpointError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return
    if changes.applied:
        log.info("reloaded: %s", ", ".join(changes.applied))
    if changes.need_restart:
        log.warning("changed but only applied by a restart: %s", ", ".join(changes.need_restart))
    if not changes.applied and not changes.need_restart:
        log.info("reloaded: nothing changed")


def apply_reload(running: Config, new: Config) -> ReloadChanges:
    """Copy reloadable settings from ``new`` into ``running``; list the others that differ.

    The broker connection and the engine (workers, ports, provider) are fixed for
    the life of the daemon: changing them needs a restart, which drains first.
    """
    changes = ReloadChanges()
    for f in dataclasses.fields(Config):
        old_value, new_value = getattr(running, f.name), getattr(new, f.name)
        if old_value == new_value:
            continue
        if f.name in RELOADABLE and not _switches_argument_checks(f.name, old_value, new_value):
            setattr(running, f.name, new_value)
            changes.applied.append(f.name)
        else:
            changes.need_restart.append(f.name)
    if "log_level" in changes.applied or "debug" in changes.applied:
        logging.getLogger().setLevel(running.log_level)
    return changes


def _switches_argument_checks(name: str, old: object, new: object) -> bool:
    """Turning allowed_functions on or off changes how workers load arguments, which they learn at start."""
    return name == "allowed_functions" and (old is None) != (new is None)
