"""Scheduling policy of the interchange, free of sockets so it can be tested directly.

Holds every task the interchange is responsible for, queued by container type
(hard routing: a task only goes to a manager that declared its type), hands
tasks to managers with free slots in round-robin order, and decides what
happens to tasks when a manager fails: requeue while retries remain, else
fail them.

Idle workers come first: a task goes to a manager's queued (prefetch) slots
only when no manager serving its type has a worker with nothing to do.

Cost per dispatched task is O(1): managers with idle workers, and managers
with free slots, sit in two rings per container type, so scheduling does not
scan the whole manager table.
"""

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .manager_record import ManagerRecord, WorkerCensus
from .routing import Placement, Router, route


class Completion(StrEnum):
    """What to do with a result the scheduler was told of."""

    FORWARD = "forward"  # send it on to the endpoint: the task is done
    RETRY = "retry"  # a worker died and retries remain: the task was queued again
    UNKNOWN = "unknown"  # not a task we hold (a duplicate): send it on; the endpoint drops duplicates


@dataclass
class TaskEntry:
    task_id: str
    data: bytes | None  # None while only a manager's registration has told us of it
    container_type: str = "RAW"
    attempts: int = 0
    manager: str | None = None
    placed_at: float = 0.0  # monotonic, when soft routing placed it (for Router.ran)


@dataclass
class Lost:
    """A task that failed for system reasons and has no retries left."""

    entry: TaskEntry
    reason: str


class Scheduler:
    def __init__(self, max_retries: int, router: Router | None = None):
        self.max_retries = max_retries
        self.router = router  # soft routing (routing.py); None: hard routing through the rings below
        self.tasks: dict[str, TaskEntry] = {}
        self.managers: dict[str, ManagerRecord] = {}
        self._queues: dict[str, deque[str]] = {}
        # (ring kind, container type) -> managers in round-robin order, and the same as a set
        self._rings: dict[tuple[str, str], deque[str]] = {}
        self._in_ring: dict[tuple[str, str], set[str]] = {}
        self._departed_starts: Counter[str] = Counter()  # cold starts and warm hits of managers gone
        self.retried = 0  # tasks queued again after a system failure (for metrics)

    # --- tasks ---------------------------------------------------------------

    def submit(self, task_id: str, data: bytes, container_type: str = "RAW") -> bool:
        """Queue a task; False if it is already held (a resend)."""
        entry = self.tasks.get(task_id)
        if entry is not None:
            if entry.data is None:  # adopted from a manager: now it can run again if it must
                entry.data = data
                if entry.manager is None:  # its manager lost it before we had its bytes
                    self._queue(entry.container_type).append(task_id)
            return False
        self.tasks[task_id] = TaskEntry(task_id, data, container_type)
        self._queue(container_type).append(task_id)
        return True

    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def running(self) -> int:
        return sum(len(r.tasks) for r in self.managers.values())

    def complete(self, task_id: str, system_failure: bool) -> Completion:
        """Record a result, and say what becomes of it.

        A result can arrive for a task that is queued, not assigned: after an
        interchange restart the endpoint resends a task that a manager, not yet
        registered again, had already run. The queued copy is then dropped.
        """
        entry = self.tasks.get(task_id)
        if entry is None:
            return Completion.UNKNOWN
        was_assigned = entry.manager is not None
        record = self.managers.get(entry.manager or "")
        if record is not None and self.router is not None and record.fixed_type is None:
            # Its worker is idle again, and warm for this type, until the manager's next word.
            record.warm_idle[entry.container_type] = record.warm_idle.get(entry.container_type, 0) + 1
            self.router.ran(entry.container_type, time.monotonic() - entry.placed_at)
        self._unassign(entry)
        if system_failure and entry.attempts <= self.max_retries and entry.data is not None:
            if was_assigned:
                self._requeue(entry, front=True)
            self.retried += 1
            return Completion.RETRY
        if not was_assigned:
            self._dequeue(entry)
        del self.tasks[task_id]
        return Completion.FORWARD

    # --- managers ------------------------------------------------------------

    def add_manager(self, record: ManagerRecord, known_tasks: list[str]) -> list[Lost]:
        """Register (or re-register) a manager, adopting the tasks it says it holds.

        ``record.batch_seq`` is the newest batch the manager had received when it
        registered. A registration from the process already known (the same
        incarnation: the link healed, or it was asked to register again) loses
        nothing: batches sent after that one are still on their way. A new
        process under the same id (a restarted manager) has lost whatever it
        does not declare, and each such task counts as an attempt.
        """
        lost: list[Lost] = []
        old = self.managers.get(record.manager_id)
        if old is not None and old.incarnation and old.incarnation == record.incarnation:
            seen = record.batch_seq
            record.tasks = dict(old.tasks)
            record.batch_seq = max(old.batch_seq, seen)
            record.draining = old.draining
            self.managers[record.manager_id] = record
            self.reconcile(record.manager_id, known_tasks, seen)
        elif old is not None:
            held = set(known_tasks)
            forgotten = [tid for tid in old.tasks if tid not in held]
            lost = self._fail_or_requeue(old, forgotten, "the manager restarted while running it")
            record.tasks = {tid: seq for tid, seq in old.tasks.items() if tid in held}
        self.managers[record.manager_id] = record
        for tid in known_tasks:
            self._adopt(record, tid)
        self._mark_ready(record)
        return lost

    def remove_manager(self, manager_id: str, reason: str) -> list[Lost]:
        record = self.managers.pop(manager_id, None)
        if record is None:
            return []
        self._departed_starts.update(cold=record.cold_starts, warm=record.warm_hits)
        return self._fail_or_requeue(record, list(record.tasks), reason)

    def reconcile(self, manager_id: str, known_tasks: list[str], last_batch: int) -> int:
        """Requeue tasks sent to a manager in batches it saw, but which it does not hold."""
        record = self.managers.get(manager_id)
        if record is None:
            return 0
        held = set(known_tasks)
        missing = [tid for tid, seq in record.tasks.items() if seq <= last_batch and tid not in held]
        for tid in missing:
            entry = self.tasks[tid]
            self._unassign(entry)
            entry.attempts = max(0, entry.attempts - 1)  # it never ran; not a failure
            if entry.data is not None:  # else it runs once the endpoint's resend brings its bytes (submit)
                self._requeue(entry, front=True)
        return len(missing)

    def take_queued(self, types: list[str] | None = None) -> list[TaskEntry]:
        """Remove and return the tasks (of ``types``; all if none given) waiting for a manager: none will come."""
        taken = []
        for ctype, queue in self._queues.items():
            if types and ctype not in types:
                continue
            while queue:
                entry = self.tasks.get(queue.popleft())
                if entry is not None and entry.manager is None:
                    del self.tasks[entry.task_id]
                    taken.append(entry)
        return taken

    def set_draining(self, manager_id: str) -> None:
        record = self.managers.get(manager_id)
        if record:
            record.draining = True

    # --- dispatch ------------------------------------------------------------

    def advertise(self, manager_id: str, census: "WorkerCensus") -> None:
        """A manager's workers by type, as its registration or heartbeat says (see ManagerRecord.take_census)."""
        record = self.managers.get(manager_id)
        if record is not None:
            record.take_census(census)

    def container_starts(self) -> dict[str, int]:
        """Container workers the managers started (cold) and tasks that found one idle (warm), since we started."""
        totals = Counter(self._departed_starts)
        for record in self.managers.values():
            totals.update(cold=record.cold_starts, warm=record.warm_hits)
        return {"cold": totals["cold"], "warm": totals["warm"]}

    def dispatch(self) -> list[tuple[ManagerRecord, list[TaskEntry]]]:
        """Assign queued tasks: first to idle workers anywhere, then to managers' queue slots."""
        if self.router is not None:
            return self._dispatch_routed(self.router)
        plan: dict[str, tuple[ManagerRecord, list[TaskEntry]]] = {}
        for ctype, queue in self._queues.items():
            # Idle workers take as many as they can; queue slots one per manager per
            # turn, so that queued tasks spread instead of piling up behind one manager.
            self._fill(plan, queue, ("idle", ctype), _free_workers, per_turn=None)
            self._fill(plan, queue, ("slots", ctype), _free_slots, per_turn=1)
        for record, _ in plan.values():
            record.batch_seq += 1
        return list(plan.values())

    def _fill(self, plan: dict[str, tuple[ManagerRecord, list[TaskEntry]]], queue: deque[str],
              ring_key: tuple[str, str], room: Callable[[ManagerRecord], int], per_turn: int | None) -> None:
        ring = self._rings.get(ring_key)
        while queue and ring:
            record = self.managers.get(ring[0])
            space = room(record) if record is not None else 0
            if record is None or space == 0:
                self._in_ring[ring_key].discard(ring.popleft())
                continue
            ring.rotate(-1)
            if per_turn is not None:
                space = min(space, per_turn)
            batch = plan.setdefault(record.manager_id, (record, []))[1]
            while space and queue:
                entry = self.tasks.get(queue.popleft())
                if entry is None or entry.manager is not None or entry.data is None:
                    # Finished or assigned meanwhile (see complete): nothing to send. Without its bytes
                    # (adopted from a manager that then lost it), it is queued again by submit().
                    continue
                entry.attempts += 1
                entry.manager = record.manager_id
                record.tasks[entry.task_id] = record.batch_seq + 1
                batch.append(entry)
                space -= 1

    def _dispatch_routed(self, router: Router) -> list[tuple[ManagerRecord, list[TaskEntry]]]:
        """Soft routing: each task to a warm worker of its type, else a free slot, else an idle worker of another
        type (routing.py); only to workers that can start it now, never to a queue slot."""
        for queue in self._queues.values():
            while queue and self._stale(queue[0]):
                queue.popleft()
        offers = [r.offer() for r in self.managers.values()]
        running = Counter(self.tasks[t].container_type for r in self.managers.values() for t in r.tasks
                          if t in self.tasks)
        plan: dict[str, tuple[ManagerRecord, list[TaskEntry]]] = {}
        for task_id, decision in route(router, self._queues, offers, running):
            entry, record = self.tasks.get(task_id), self.managers[decision.manager_id]
            if entry is None or self._stale(task_id):
                continue
            used = decision.evicts if decision.placement == Placement.REPLACE else entry.container_type
            if used and decision.placement != Placement.COLD and record.fixed_type is None:
                record.warm_idle[used] = record.warm_idle.get(used, 0) - 1
            entry.attempts += 1
            entry.manager = record.manager_id
            entry.placed_at = time.monotonic()
            record.tasks[task_id] = record.batch_seq + 1
            plan.setdefault(record.manager_id, (record, []))[1].append(entry)
        for record, _ in plan.values():
            record.batch_seq += 1
        return list(plan.values())

    def _stale(self, task_id: str) -> bool:
        entry = self.tasks.get(task_id)
        return entry is None or entry.manager is not None or entry.data is None

    # --- internals -----------------------------------------------------------

    def _queue(self, ctype: str) -> deque[str]:
        return self._queues.setdefault(ctype, deque())

    def _mark_ready(self, record: ManagerRecord) -> None:
        for kind, room in (("idle", _free_workers), ("slots", _free_slots)):
            if room(record) == 0:
                continue
            for ctype in record.container_types:
                members = self._in_ring.setdefault((kind, ctype), set())
                if record.manager_id not in members:
                    members.add(record.manager_id)
                    self._rings.setdefault((kind, ctype), deque()).append(record.manager_id)

    def _unassign(self, entry: TaskEntry) -> None:
        if entry.manager is None:
            return
        record = self.managers.get(entry.manager)
        entry.manager = None
        if record is not None:
            record.tasks.pop(entry.task_id, None)
            self._mark_ready(record)

    def _dequeue(self, entry: TaskEntry) -> None:
        """Remove a queued task from its queue: O(queue length), only on rare recovery paths."""
        queue = self._queue(entry.container_type)
        if entry.task_id in queue:
            queue.remove(entry.task_id)

    def _requeue(self, entry: TaskEntry, front: bool) -> None:
        queue = self._queue(entry.container_type)
        queue.appendleft(entry.task_id) if front else queue.append(entry.task_id)

    def _adopt(self, record: ManagerRecord, task_id: str) -> None:
        entry = self.tasks.get(task_id)
        if entry is None:
            entry = self.tasks[task_id] = TaskEntry(task_id, None, attempts=1)
        elif entry.manager is not None:
            return  # assigned elsewhere meanwhile; whichever result comes first wins
        else:
            self._dequeue(entry)
            entry.attempts += 1
        entry.manager = record.manager_id
        record.tasks[task_id] = record.batch_seq

    def _fail_or_requeue(self, record: ManagerRecord, task_ids: list[str], reason: str) -> list[Lost]:
        lost = []
        for tid in task_ids:
            record.tasks.pop(tid, None)
            entry = self.tasks.get(tid)
            if entry is None or entry.manager != record.manager_id:
                continue
            entry.manager = None
            if entry.attempts <= self.max_retries and entry.data is not None:
                self._requeue(entry, front=True)
                self.retried += 1
            else:
                del self.tasks[tid]
                lost.append(Lost(entry, reason))
        return lost


def _free_workers(record: ManagerRecord) -> int:
    return record.free_workers


def _free_slots(record: ManagerRecord) -> int:
    return record.free_slots
