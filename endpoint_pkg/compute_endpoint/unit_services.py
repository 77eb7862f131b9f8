"""The interchange and a manager run from an endpoint's config, as the systemd units run them.

The units find each other through the endpoint's state directory: the
interchange listens for its endpoint on a socket there and records its
manager port in ``interchange.json``, which managers on the same host read
when the config fixes no ``engine.worker_port`` (managers on other hosts need
that port in their config).
"""

import os
import socket

from .config import Config
from .endpoint.components import unit_interchange_address
from .errors import EndpointError
from .home import EndpointDir, read_json, write_json
from .interchange import main as interchange_main
from .interchange.interchange import InterchangeSettings
from .manager import main as manager_main
from .manager.manager import ManagerSettings


def _recorded(ep: EndpointDir) -> dict:
    return read_json(ep.state_dir / "interchange.json") or {}


def interchange_settings(ep: EndpointDir, config: Config, port: int) -> InterchangeSettings:
    engine = config.engine
    return InterchangeSettings(
        endpoint_address=unit_interchange_address(ep), worker_address=engine.address, worker_port=port,
        heartbeat_period=engine.heartbeat_period, heartbeat_threshold=engine.heartbeat_threshold,
        max_retries=engine.max_retries_on_system_failure,
    )


def run_interchange(ep: EndpointDir, config: Config) -> int:
    # Keep the port managers already know across restarts, unless the config fixes one.
    port = config.engine.worker_port or _recorded(ep).get("worker_port") or 0

    def record(interchange):
        write_json(ep.state_dir / "interchange.json", {"pid": os.getpid(), "worker_address": config.engine.address,
                                                       "worker_port": interchange.worker_port})

    code = interchange_main.run(interchange_settings(ep, config, port), None, config.log_level, record)
    if code and port and not config.engine.worker_port:
        # The remembered port was taken meanwhile; any free one will do for local managers.
        code = interchange_main.run(interchange_settings(ep, config, 0), None, config.log_level, record)
    return code


def manager_settings(ep: EndpointDir, config: Config) -> ManagerSettings:
    engine = config.engine
    port = engine.worker_port or _recorded(ep).get("worker_port")
    if not port:
        raise EndpointError(f"no interchange port for endpoint {ep.name!r}: set engine.worker_port in its config "
                            "(required for managers on other hosts), or start compute-interchange@"
                            f"{ep.name} on this host first")
    host = "127.0.0.1" if engine.address in ("0.0.0.0", "") else engine.address
    return ManagerSettings(
        interchange=f"tcp://{host}:{port}", workers=engine.max_workers_per_node,
        manager_id=f"{socket.gethostname()}.{ep.name}", prefetch=engine.prefetch_capacity,
        heartbeat_period=engine.heartbeat_period, heartbeat_threshold=engine.heartbeat_threshold,
        walltime=engine.task_walltime, max_result_bytes=config.max_payload_bytes,
    )


def run_manager(ep: EndpointDir, config: Config) -> int:
    worker_env = {**os.environ, **{k: str(v) for k, v in config.engine.worker_env.items()}}
    return manager_main.run(manager_settings(ep, config), None, config.log_level, worker_env)
