"""What a running endpoint says about itself: status reports and `status --json` data."""

import os
import socket
import time

from .. import __version__
from ..protocol import StatusReport

_STATES = {"starting": "Starting", "online": "Running", "reconnecting": "Running", "stopping": "Stopping"}


class StatusBuilder:
    def __init__(self, daemon):
        self.daemon = daemon
        self.started_at = time.time()
        self.hostname = socket.gethostname()

    def _counts(self) -> dict:
        ix = self.daemon.ix_status
        managers = self.daemon.ix_managers
        return {
            "managers": len(managers),
            "workers": sum(mgr["workers"] for mgr in managers),
            "idle_workers": sum(mgr["idle_workers"] for mgr in managers),
            "manager_details": managers,
            "capacity": ix.capacity if ix else 0,
            "tasks_queued_in_interchange": ix.queued if ix else 0,
            "tasks_running": ix.running if ix else 0,
        }

    def report(self, state: str | None = None) -> StatusReport:
        d = self.daemon
        counts = self._counts()
        return StatusReport(
            endpoint_id=d.names.endpoint_id, name=d.ep.name, owner=d.names.owner,
            state=state or ("draining" if d.state == "stopping" else "online"),
            sent_at=time.time(), heartbeat_period=d.config.heartbeat_period,
            display_name=d.config.display_name or d.ep.name, hostname=self.hostname, version=__version__,
            managers=counts["managers"], workers=counts["workers"], idle_workers=counts["idle_workers"],
            outstanding_tasks=len(d.ledger), tasks_completed=d.ledger.completed,
            detail={"heartbeat_threshold": d.config.heartbeat_threshold},
        )

    def as_dict(self) -> dict:
        d = self.daemon
        pids = d.components.pids()
        return {
            "name": d.ep.name,
            "endpoint_id": d.names.endpoint_id,
            "owner": d.names.owner,
            "display_name": d.config.display_name or d.ep.name,
            "state": _STATES.get(d.state, d.state),
            "broker": {"url": d.config.broker.url, "connected": d.agent.ready, "messages": dict(d.agent.counts)},
            "queues": d.names.as_dict(),
            **self._counts(),
            "tasks_outstanding": len(d.ledger),
            "tasks_completed": d.ledger.completed,
            "interchange_restarts": d.components.interchange_restarts,
            "managers_replaced": d.components.managers_replaced,
            "pids": {"endpoint": os.getpid(), "interchange": pids["interchange"], "managers": pids["managers"]},
            "started_at": self.started_at,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "hostname": self.hostname,
            "version": __version__,
        }
