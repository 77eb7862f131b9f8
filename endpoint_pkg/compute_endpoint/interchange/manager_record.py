"""What the interchange knows about one connected manager."""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .routing import Offer, runtime_of

if TYPE_CHECKING:
    from ..protocol import ManagerRegistration


class WorkerCensus(Protocol):
    """What a registration and a heartbeat say of a manager's workers."""

    warm_containers: list[str]
    busy_containers: list[str]
    cold_starts: int
    warm_hits: int
    last_batch: int  # the newest task batch the manager had received when it said so


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
    block_id: str = ""
    registered_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    idle_workers: int = 0
    draining: bool = False
    batch_seq: int = 0
    # task id -> sequence number of the batch that carried it
    tasks: dict[str, int] = field(default_factory=dict)
    # Soft routing: idle workers per container type, as the manager last said and counted since.
    warm_idle: dict[str, int] = field(default_factory=dict)
    idle_types: dict[str, int] = field(default_factory=dict)  # as last said (not counted down): for status
    busy_types: dict[str, int] = field(default_factory=dict)
    cold_starts: int = 0
    warm_hits: int = 0

    def take_census(self, census: WorkerCensus) -> None:
        """No more types than its workers, of the types it registered, and no negative counts: the rest is noise."""
        served = set(self.container_types)
        self.idle_types = dict(Counter(t for t in census.warm_containers[:self.workers] if t in served))
        self.busy_types = dict(Counter(t for t in census.busy_containers[:self.workers] if t in served))
        if census.last_batch >= self.batch_seq:
            self.warm_idle = dict(self.idle_types)
        # else tasks sent since are not in it: the interchange's own count (down at dispatch, up at each result)
        # is newer than this word, which would mark a worker warm for a type another task has just replaced.
        self.cold_starts, self.warm_hits = max(0, census.cold_starts), max(0, census.warm_hits)

    def containers(self) -> dict[str, dict[str, int]]:
        """Per type: its workers (warm), idle and busy."""
        types = sorted(set(self.idle_types) | set(self.busy_types))
        return {t: {"warm": self.idle_types.get(t, 0) + self.busy_types.get(t, 0), "idle": self.idle_types.get(t, 0),
                    "busy": self.busy_types.get(t, 0)} for t in types}

    @property
    def fixed_type(self) -> str | None:
        """The one type a hard-routed manager serves (its workers are all of it), or None."""
        return self.container_types[0] if len(self.container_types) == 1 else None

    def offer(self) -> "Offer":
        """What it can take now, for the router."""
        if self.fixed_type is not None:
            return Offer(self.manager_id, warm_idle={self.fixed_type: self.free_workers}, fixed_type=self.fixed_type)
        warm = {t: n for t, n in self.warm_idle.items() if n > 0}
        unused = 0 if self.draining else max(0, self.workers - len(self.tasks) - sum(warm.values()))
        runtimes = frozenset(runtime_of(t) or "" for t in self.container_types) - {""}
        return Offer(self.manager_id, warm_idle={} if self.draining else warm, unused=unused, runtimes=runtimes)

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
            "containers": self.containers(),
            "last_seen_seconds_ago": round(time.monotonic() - self.last_seen, 1),
            "draining": self.draining,
            "block_id": self.block_id,
        }


_MAX_WORKERS = 65_536
_MAX_TEXT = 255
_MAX_TYPES = 256  # container types one manager may serve
_MAX_TYPE = 1024


def registration_problem(msg: "ManagerRegistration", sender: str, plain_arguments: bool = False) -> str | None:
    """Why a registration cannot be taken as it is, or None. Field types were checked when it was unpacked.

    ``plain_arguments``: the endpoint has ``allowed_functions``, so a manager whose
    workers would unpickle arguments in full could run code hidden in them.
    """
    if plain_arguments and not msg.plain_arguments:
        return ("this endpoint has allowed_functions, but this manager's workers would load task arguments in full: "
                "give the manager's config the same allowed_functions")
    if msg.manager_id != sender:
        return f"it names manager {msg.manager_id[:100]!r} but comes from {sender[:100]!r}"
    if not 0 < len(msg.manager_id) <= _MAX_TEXT or not msg.manager_id.isprintable():
        return "its manager id must be 1 to 255 printable characters"
    if len(msg.block_id) > _MAX_TEXT or not msg.block_id.isprintable():
        return "its block id must be at most 255 printable characters"
    if len(msg.hostname) > _MAX_TEXT or not msg.hostname.isprintable():
        return "its host name must be at most 255 printable characters"
    if not 1 <= msg.workers <= _MAX_WORKERS or not 0 <= msg.prefetch <= _MAX_WORKERS:
        return f"workers must be 1 to {_MAX_WORKERS} and prefetch 0 to {_MAX_WORKERS}"
    if msg.pid < 0 or msg.last_batch < 0:
        return "pid and last_batch must not be negative"
    types = msg.container_types
    if not 0 < len(types) <= _MAX_TYPES or any(not 0 < len(t) <= _MAX_TYPE or not t.isprintable() for t in types):
        return (f"container_types must be 1 to {_MAX_TYPES} names (RAW or RUNTIME:IMAGE), each 1 to {_MAX_TYPE} "
                "printable characters")
    return None
