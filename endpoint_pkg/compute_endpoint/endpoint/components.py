"""The processes an endpoint runs beside itself: its interchange and its managers.

``LocalComponents``: started as children of the daemon (each dies with it),
restarted when they die, and recorded in ``components.json`` so that after a
crash the next ``start`` or ``stop`` can find and remove anything left behind.

``UnitComponents``: run as their own systemd units (the packaged appliance);
the daemon only finds the interchange and reports what it says, and, with a
batch provider, submits the blocks whose jobs run managers on compute nodes.
"""

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from typing import Protocol

from ..config import Config
from ..errors import EndpointError
from ..interchange.settings import InterchangeSettings
from ..paths import EndpointDir, ensure_private_dir, read_json, write_json
from ..procs import describe_exit, is_ours, spawn, terminate
from ..protocol import Control, InterchangeStatus
from ..providers.batch import BatchBlocks
from ..providers.local import LocalBlocks
from ..providers.typed import TypedBlocks, hard_routed

log = logging.getLogger(__name__)

COMPONENT_MARKER = "compute_endpoint."
QUICK_DEATH_SECONDS = 10.0


class Components(Protocol):
    """What the daemon drives: its interchange and managers, however they are run."""

    @property
    def owns_interchange(self) -> bool:
        """The daemon tells the interchange to shut down when the endpoint stops."""

    @property
    def interchange_address(self) -> str: ...

    @property
    def interchange_restarts(self) -> int: ...

    @property
    def managers_replaced(self) -> int: ...

    def start(self) -> None: ...

    def supervise(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> bool:
        """Restart what died and scale managers (``by_type``: tasks outstanding per container type, for hard
        routing); True if the interchange was restarted."""

    def interchange_failure(self) -> str | None:
        """Why the interchange is not running (its last words), or None while it runs."""

    def observe(self, status: InterchangeStatus) -> None: ...

    def pids(self) -> dict: ...

    def note_load(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        """Tasks arrived: a strategy that is short of slots need not wait for its next period."""

    def take_requests(self) -> list[Control]:
        """What the interchange must be told for the blocks: managers to drain, waiting tasks to fail."""

    def describe_blocks(self) -> dict | None:
        """The provider, strategy and blocks, for status (None when systemd runs the managers)."""

    def stop(self, timeout: float = 10.0) -> None: ...


def free_ports(*addresses: str, avoid: tuple[int, ...] = ()) -> list[int]:
    """Distinct free ports, one per address.

    Every socket stays bound until all ports are chosen: closing one before
    binding the next lets the kernel hand out the same port twice.
    """
    socks: list[socket.socket] = []
    try:
        while len(socks) < len(addresses):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((addresses[len(socks)], 0))
            if sock.getsockname()[1] in avoid:
                continue  # keep it bound so the next bind gets another port
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class LocalComponents:
    """The interchange and managers as children of the daemon."""

    owns_interchange = True

    def __init__(self, ep: EndpointDir, config: Config, env: dict[str, str]):
        self.ep = ep
        self.config = config
        self.env = env
        engine = config.engine
        # Managers elsewhere need a port that outlives interchange restarts: chosen once, here.
        self.worker_port = engine.worker_port or free_ports(engine.address)[0] if engine.remote_managers else 0
        self.interchange: subprocess.Popen | None = None
        self.interchange_restarts = 0
        self._interchange_started = 0.0
        self._stderr_offset = 0
        self._quick_deaths = 0
        self._restart_at: float | None = None
        self.blocks: LocalBlocks | BatchBlocks | TypedBlocks
        if engine.batch:
            self.blocks = batch_blocks(ep, config, f"tcp://{engine.address}:{self.worker_port}")
        elif hard_routed(config):
            self.blocks = TypedBlocks.local(ep, config, ep.local_manager_socket, env)
        else:
            self.blocks = LocalBlocks(ep, config, ep.local_manager_socket, env)

    @property
    def interchange_address(self) -> str:
        return self.ep.interchange_socket

    def start(self) -> None:
        # Managers in containers bind the socket directory, which the interchange would make only once it binds.
        ensure_private_dir(self.ep.socket_dir)
        self._start_interchange()
        self.blocks.start()
        self.record()

    def _start_interchange(self) -> None:
        settings = InterchangeSettings.from_config(self.config, self.interchange_address, self.ep.local_manager_socket,
                                                   self.worker_port, keys_dir=self.ep.keys_dir, parent_pid=os.getpid(),
                                                   log_file=self.ep.log_file("interchange"))
        self.interchange, self._stderr_offset = spawn(settings.command(), self.ep.stderr_log("interchange"), self.env)
        self._interchange_started = time.monotonic()
        remote = f"; managers from other hosts on {settings.worker_address}:{self.worker_port}" * bool(self.worker_port)
        log.info("started interchange (pid %d) in %s%s", self.interchange.pid, self.ep.socket_dir, remote)

    def interchange_failure(self) -> str | None:
        """Why the interchange is not running (its last error line), or None while it runs."""
        if self.interchange is None or self.interchange.poll() is None:
            return None
        try:
            with open(self.ep.stderr_log("interchange"), "rb") as stderr:
                stderr.seek(self._stderr_offset)  # only what this run of it wrote
                lines = stderr.read().decode(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else describe_exit(self.interchange.returncode)

    def supervise(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> bool:
        """Restart what died and scale managers; True if the interchange was restarted."""
        restarted = self._restart_interchange_if_dead(time.monotonic())
        before = self.blocks.pids()
        self.blocks.poll()
        self.blocks.scale(outstanding, by_type)
        if restarted or self.blocks.pids() != before:
            self.record()
        return restarted

    def _restart_interchange_if_dead(self, now: float) -> bool:
        code = self.interchange.poll() if self.interchange else None
        if self.interchange is None or code is None:
            return False
        if self._restart_at is None:
            # An interchange that dies right after starting (port taken, say) is
            # restarted with growing delays instead of in a tight loop.
            quick = now - self._interchange_started < QUICK_DEATH_SECONDS
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            delay = min(30.0, 2.0 ** self._quick_deaths) if self._quick_deaths > 1 else 0.0
            log.error("interchange (pid %d) died (%s: %s); restarting it%s", self.interchange.pid,
                      describe_exit(code), self.interchange_failure(), f" in {delay:.0f}s" if delay else "")
            self._restart_at = now + delay
        if now < self._restart_at:
            return False
        self._restart_at = None
        self.interchange_restarts += 1
        self._start_interchange()
        return True

    @property
    def managers_replaced(self) -> int:
        return self.blocks.replaced

    def observe(self, status: InterchangeStatus) -> None:
        self.blocks.observe(status.managers)

    def note_load(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        self.blocks.scale(outstanding, by_type)

    def take_requests(self) -> list[Control]:
        return self.blocks.take_requests()

    def describe_blocks(self) -> dict | None:
        return self.blocks.describe()

    def pids(self) -> dict:
        return {
            "interchange": self.interchange.pid if self.interchange else None,
            "managers": self.blocks.pids(),
        }

    def record(self) -> None:
        write_json(self.ep.components_file, {"endpoint": os.getpid(), **self.pids()})

    def stop(self, timeout: float = 10.0) -> None:
        self.blocks.stop(timeout)
        if self.interchange:
            terminate([self.interchange], timeout)
        self.ep.components_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # empty once the interchange closed its sockets; kept otherwise
            self.ep.socket_dir.rmdir()


class UnitComponents:
    """The interchange and managers are systemd units; systemd starts and restarts them."""

    owns_interchange = False
    interchange_restarts = 0
    managers_replaced = 0

    def __init__(self, ep: EndpointDir, config: Config):
        self.ep = ep
        self.interchange_address = ep.interchange_socket
        self._pids: dict = {"interchange": None, "managers": []}
        self._incarnations: set[str] = set()
        self._host = socket.gethostname()
        batch = config.engine.batch
        self.blocks = batch_blocks(ep, config, unit_interchange_address(ep, config)) if batch else None

    def start(self) -> None:
        """compute-interchange@ and compute-manager@ are their own units; batch blocks start here."""
        if self.blocks:
            self.blocks.start()

    def supervise(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> bool:
        self.note_load(outstanding, by_type)
        return False  # systemd restarts them; a new interchange incarnation tells the daemon to resend

    def interchange_failure(self) -> str | None:
        return None

    def note_load(self, outstanding: int, by_type: Mapping[str, int] | None = None) -> None:
        if self.blocks:  # else systemd runs the managers: nothing to scale
            self.blocks.scale(outstanding, by_type)

    def take_requests(self) -> list[Control]:
        return self.blocks.take_requests() if self.blocks else []

    def describe_blocks(self) -> dict | None:
        return self.blocks.describe() if self.blocks else None

    def observe(self, status: InterchangeStatus) -> None:
        if status.incarnation not in self._incarnations:
            if self._incarnations:
                self.interchange_restarts += 1
            self._incarnations.add(status.incarnation)
        local = [m["pid"] for m in status.managers if m["hostname"] == self._host]
        self._pids = {"interchange": status.pid, "managers": local}
        if self.blocks:
            self.blocks.observe(status.managers)

    def pids(self) -> dict:
        return dict(self._pids)

    def record(self) -> None:
        write_json(self.ep.components_file, {"endpoint": os.getpid(), **self._pids})

    def stop(self, timeout: float = 10.0) -> None:
        if self.blocks:
            self.blocks.stop(timeout)
        self.ep.components_file.unlink(missing_ok=True)


def batch_blocks(ep: EndpointDir, config: Config, interchange: str) -> BatchBlocks | TypedBlocks:
    return TypedBlocks.batch(ep, config, interchange) if hard_routed(config) else BatchBlocks(ep, config, interchange)


def unit_interchange_address(ep: EndpointDir, config: Config) -> str:
    """Where managers in batch jobs reach the compute-interchange@ unit: its address and fixed port."""
    port = config.engine.worker_port or ep.recorded_worker_port()
    if not port:
        raise EndpointError(f"endpoint {ep.name!r} has a batch provider but no manager port: set "
                            "engine.worker_port (the compute_endpoint role sets it), then restart "
                            f"compute-endpoint-stack@{ep.name}.target")
    return f"tcp://{config.engine.address}:{port}"


def kill_leftovers(ep: EndpointDir, timeout: float = 5.0) -> list[int]:
    """Terminate components recorded by a daemon that did not stop cleanly."""
    recorded = read_json(ep.components_file) or {}
    pids = [recorded.get("interchange")] + list(recorded.get("managers") or [])
    ours = [p for p in pids if isinstance(p, int) and is_ours(p, COMPONENT_MARKER)]
    # Workers of a leftover manager die with it (parent-death signal).
    terminate(ours, timeout)
    ep.components_file.unlink(missing_ok=True)
    return ours
