"""The endpoint's ledger of tasks between "received from the broker" and "result confirmed".

A task stays here, with its body and the broker deliveries that carried it,
until the broker has confirmed its result; a delivery (one task, or a bundle of
them) is acked only once every task in it is done. That is what makes delivery
at-least-once: anything not yet confirmed is still either ours to resend to the
interchange or the broker's to redeliver.

Redeliveries of a task we already hold attach to the existing entry instead
of running it again; redeliveries of a task finished moments ago are
recognised from a bounded memory of finished task ids and count as done.
"""

import heapq
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from .amqp import Delivery

# Redeliveries of finished tasks come right after a lost channel, and only for
# deliveries unacked at that moment (at most a prefetch window, a few hundred).
# Ten thousand ids cover that with a wide margin and cap memory at about 2 MiB.
RECENTLY_FINISHED = 10_000


class Receipt(StrEnum):
    """What the ledger made of a task a delivery brought."""

    NEW = "new"  # run it
    DUPLICATE = "duplicate"  # held already: this delivery waits for the same result
    FINISHED = "finished"  # finished moments ago: counted done for this delivery


@dataclass(eq=False)
class DeliveryGroup:
    """One broker delivery and how many of its tasks are not done yet."""

    delivery: Delivery
    pending: int

    def done_one(self) -> bool:
        """Count one task done; True when that was the last (time to ack)."""
        self.pending -= 1
        return self.pending == 0


@dataclass
class InflightTask:
    task_id: str
    body: bytes
    reply_to: str
    received_at: float
    groups: list[DeliveryGroup] = field(default_factory=list)
    result: bytes | None = None  # set once the interchange returned it (or the endpoint refused the task)
    walltime: float | None = None  # the one it runs under (the client's, capped by the operator's)
    deadline: float | None = None  # monotonic time after which it is failed as lost (see InflightLedger.overdue)
    publish_refusals: int = 0  # times the broker refused a publish of its result (see ResultOutbox)
    container_type: str = "RAW"  # as admitted (RUNTIME:IMAGE), for hard routing's pools of managers


class InflightLedger:
    def __init__(self):
        self.tasks: dict[str, InflightTask] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._deadlines: list[tuple[float, str]] = []  # a heap; entries of finished tasks are skipped
        self.completed = 0
        self.by_type: Counter[str] = Counter()  # tasks held per container type

    def __len__(self) -> int:
        return len(self.tasks)

    def receive(self, task_id: str, body: bytes, reply_to: str, group: DeliveryGroup) -> Receipt:
        """Record a task of a delivery."""
        if task_id in self._finished:
            group.done_one()
            return Receipt.FINISHED
        entry = self.tasks.get(task_id)
        if entry is not None:
            entry.groups.append(group)
            return Receipt.DUPLICATE
        self.tasks[task_id] = InflightTask(task_id, body, reply_to, time.monotonic(), [group])
        self.by_type["RAW"] += 1
        return Receipt.NEW

    def set_type(self, entry: InflightTask, container_type: str) -> None:
        self.by_type[entry.container_type] -= 1
        entry.container_type = container_type
        self.by_type[container_type] += 1

    def get(self, task_id: str) -> InflightTask | None:
        return self.tasks.get(task_id)

    def __getitem__(self, task_id: str) -> InflightTask:
        return self.tasks[task_id]

    def finish(self, task_id: str) -> list[DeliveryGroup]:
        """Forget a task whose result is confirmed; returns the deliveries now complete."""
        entry = self.tasks.pop(task_id, None)
        if entry is None:
            return []
        self.completed += 1
        self.by_type[entry.container_type] -= 1
        self._finished[task_id] = None
        if len(self._finished) > RECENTLY_FINISHED:
            self._finished.popitem(last=False)
        return [group for group in entry.groups if group.done_one()]

    def set_deadline(self, entry: InflightTask, seconds: float) -> None:
        entry.deadline = time.monotonic() + seconds
        heapq.heappush(self._deadlines, (entry.deadline, entry.task_id))

    def overdue(self, now: float) -> list[InflightTask]:
        """Tasks past their deadline with no result: lost somewhere between here and a worker."""
        late = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, task_id = heapq.heappop(self._deadlines)
            entry = self.tasks.get(task_id)
            if entry is not None and entry.result is None and entry.deadline == deadline:
                late.append(entry)
        return late

    def awaiting_result(self) -> list[InflightTask]:
        return [t for t in self.tasks.values() if t.result is None]
