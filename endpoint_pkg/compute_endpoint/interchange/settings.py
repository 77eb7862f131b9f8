"""The interchange's settings: built from an endpoint's config, carried on its command line."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..cmdline import CommandLine, option

if TYPE_CHECKING:  # the interchange process needs no config machinery, only what its command line says
    from ..config import Config


@dataclass
class InterchangeSettings(CommandLine):
    MODULE = "compute_endpoint.interchange"
    DESCRIPTION = "Route tasks from an endpoint to its managers."

    endpoint_address: str = option(help="socket for the endpoint daemon: ipc://PATH in a private directory")
    local_managers: str = option("", help="socket for managers on this host: ipc://PATH in a private directory")
    worker_address: str = option("", help="TCP address to listen on for managers on other hosts (empty: none)")
    worker_port: int = option(0, help="TCP port for managers on other hosts (0: any free port)")
    keys_dir: Path | None = option(None, help="CurveZMQ keys for the TCP port: the endpoint's keys directory")
    heartbeat_period: float = option(5.0, help="seconds between heartbeats to managers")
    heartbeat_threshold: float = option(20.0, help="seconds of silence before a manager is declared lost")
    max_retries: int = option(1, help="re-runs of a task whose worker or manager died")
    plain_arguments: bool = option(False, help="admit only managers whose workers load arguments as plain data "
                                               "(the endpoint has allowed_functions)")
    routing: str = option("", help="per-function containers: soft (a warm worker of the task's type, else a free "
                                   "slot, else an idle worker of another type) or random (any manager with room); "
                                   "empty: by type only")
    parent_pid: int = option(0, help="exit when this process dies")
    status_interval: float = option(1.0, help="seconds between status reports to the endpoint")
    log_file: Path | None = option(None, help="log to this file (default: stderr)")
    log_level: str = option("INFO", help="DEBUG, INFO, WARNING or ERROR")

    @classmethod
    def from_config(cls, config: "Config", endpoint_address: str, local_managers: str, worker_port: int, *,
                    keys_dir: Path | None = None, parent_pid: int = 0,
                    log_file: Path | None = None) -> "InterchangeSettings":
        """Managers get a TCP port when they run in batch jobs or on other hosts (``engine.remote_managers``)."""
        engine = config.engine
        remote = engine.address if engine.remote_managers else ""
        return cls(endpoint_address=endpoint_address, local_managers=local_managers, worker_address=remote,
                   worker_port=worker_port if remote else 0, keys_dir=keys_dir if remote else None,
                   heartbeat_period=engine.heartbeat_period, heartbeat_threshold=engine.heartbeat_threshold,
                   max_retries=engine.max_retries_on_system_failure,
                   plain_arguments=config.allowed_functions is not None, parent_pid=parent_pid, log_file=log_file,
                   routing=_routing(config),
                   log_level=config.log_level)


def _routing(config: "Config") -> str:
    """Soft or random placement across managers of any type; hard routing (a manager per type) needs none."""
    mode = config.engine.scheduler_mode
    return mode if config.container_registry.entries and mode != "hard" else ""
