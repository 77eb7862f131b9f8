"""What the interchange knows about one connected manager."""

import time
from dataclasses import dataclass, field


@dataclass
class ManagerRecord:
    manager_id: str
    hostname: str = ""
    pid: int = 0
    workers: int = 0
    prefetch: int = 0
    container_types: tuple = ("RAW",)
    version: str = ""
    incarnation: str = ""  # which process of this manager id registered (see ManagerRegistration)
    registered_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    idle_workers: int = 0
    draining: bool = False
    batch_seq: int = 0
    # task id -> sequence number of the batch that carried it
    tasks: dict[str, int] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return 0 if self.draining else self.workers + self.prefetch

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - len(self.tasks))

    @property
    def free_workers(self) -> int:
        """Workers with nothing to do: a task sent now starts at once, not after another."""
        return 0 if self.draining else max(0, self.workers - len(self.tasks))

    def summary(self) -> dict:
        return {
            "manager_id": self.manager_id,
            "hostname": self.hostname,
            "pid": self.pid,
            "workers": self.workers,
            "tasks": len(self.tasks),
            "idle_workers": self.idle_workers,
            "container_types": list(self.container_types),
            "last_seen_seconds_ago": round(time.monotonic() - self.last_seen, 1),
            "draining": self.draining,
        }
