"""What a running endpoint says about itself: status reports and `status --json` data."""

import os
import socket
import time
from dataclasses import dataclass, field
from enum import StrEnum

from .. import __version__
from ..config import Config
from ..protocol import EndpointState, InterchangeStatus, StatusReport
from ..protocol.broker_names import EndpointNames


class DaemonState(StrEnum):
    STARTING = "starting"  # not yet registered with the broker
    ONLINE = "online"
    RECONNECTING = "reconnecting"  # lost the broker; serving what it holds, trying again
    STOPPING = "stopping"  # taking no new tasks; finishing those it holds


_SHOWN_AS = {DaemonState.STARTING: "Starting", DaemonState.ONLINE: "Running", DaemonState.RECONNECTING: "Running",
             DaemonState.STOPPING: "Stopping"}
# Every state `status` and `list` show a running daemon in ("Degraded": online, but every block failed).
SHOWN_STATES = (*dict.fromkeys(_SHOWN_AS.values()), "Degraded")


@dataclass
class DaemonSnapshot:
    """The daemon's state at one moment, as status reports and the status command need it."""

    name: str
    names: EndpointNames
    config: Config
    state: DaemonState
    interchange: InterchangeStatus | None
    managers: list[dict]
    tasks_outstanding: int
    tasks_completed: int
    broker_connected: bool
    broker_messages: dict[str, int]
    broker_link: dict = field(default_factory=dict)  # AmqpAgent.describe(): node in use, cluster, queue types
    pids: dict = field(default_factory=dict)
    interchange_restarts: int = 0
    managers_replaced: int = 0
    prefetch: int | None = None  # what the broker may hand the daemon unacked (None until capacity is known)
    internal_errors: int = 0
    blocks: dict | None = None  # the provider's blocks (components.describe_blocks)


class StatusBuilder:
    def __init__(self) -> None:
        self.started_at = time.time()
        self.hostname = socket.gethostname()

    @staticmethod
    def _counts(snap: DaemonSnapshot) -> dict:
        ix, managers = snap.interchange, snap.managers
        return {
            "managers": len(managers),
            "workers": sum(mgr["workers"] for mgr in managers),
            "idle_workers": sum(mgr["idle_workers"] for mgr in managers),
            "manager_details": managers,
            "capacity": ix.capacity if ix else 0,
            "tasks_queued_in_interchange": ix.queued if ix else 0,
            "tasks_running": ix.running if ix else 0,
            "manager_messages_refused": ix.refused_messages if ix else 0,
            "manager_handshakes_refused": ix.refused_handshakes if ix else 0,
            # Per-function containers: tasks that found a warm worker, and workers started or swapped for one.
            "container_placements": dict(ix.placements) if ix else {},
            # What the managers saw: container workers started (cold) and tasks an idle one took (warm).
            "container_starts": dict(ix.container_starts) if ix else {},
        }

    def report(self, snap: DaemonSnapshot, state: EndpointState | None = None) -> StatusReport:
        counts = self._counts(snap)
        if state is None:
            state = EndpointState.DRAINING if snap.state == DaemonState.STOPPING else EndpointState.ONLINE
        return StatusReport(
            endpoint_id=snap.names.endpoint_id, name=snap.name, owner=snap.names.owner, state=state,
            sent_at=time.time(), heartbeat_period=snap.config.heartbeat_period,
            display_name=snap.config.display_name or snap.name, hostname=self.hostname, version=__version__,
            managers=counts["managers"], workers=counts["workers"], idle_workers=counts["idle_workers"],
            outstanding_tasks=snap.tasks_outstanding, tasks_completed=snap.tasks_completed,
            detail={"heartbeat_threshold": snap.config.heartbeat_threshold,
                    "degraded": (snap.blocks or {}).get("degraded")},
        )

    def as_dict(self, snap: DaemonSnapshot) -> dict:
        pids = snap.pids
        degraded = (snap.blocks or {}).get("degraded")  # every block failed: tasks cannot run until one starts
        return {
            "name": snap.name,
            "endpoint_id": snap.names.endpoint_id,
            "owner": snap.names.owner,
            "display_name": snap.config.display_name or snap.name,
            "state": "Degraded" if degraded and snap.state == DaemonState.ONLINE else _SHOWN_AS[snap.state],
            "degraded": degraded,
            "broker": {"url": snap.config.broker.url, "connected": snap.broker_connected,
                       "messages": dict(snap.broker_messages), "prefetch": snap.prefetch, **snap.broker_link},
            "queues": snap.names.as_dict(),
            **self._counts(snap),
            "tasks_outstanding": snap.tasks_outstanding,
            "tasks_completed": snap.tasks_completed,
            "interchange_restarts": snap.interchange_restarts,
            "managers_replaced": snap.managers_replaced,
            "internal_errors": snap.internal_errors,
            "provider": snap.blocks,
            "pids": {"endpoint": os.getpid(), "interchange": pids.get("interchange"),
                     "managers": pids.get("managers", [])},
            "started_at": self.started_at,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "hostname": self.hostname,
            "version": __version__,
        }
