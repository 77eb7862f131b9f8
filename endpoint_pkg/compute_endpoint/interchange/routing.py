"""Which manager runs a task of a given container type: hard and soft routing, free of sockets.

A container type is ``RAW`` (a plain worker process) or ``RUNTIME:IMAGE``.
Each manager offers, as the interchange last heard and has since counted
down: its idle workers per type (warm), its slots with no worker at all
(unused), and which runtimes it can start workers of.

* **hard**: a manager serves the one type it was started for; a task goes to
  a manager of its type with an idle worker.
* **random** (a baseline for the benchmark): a manager with room, chosen at
  random; there, a warm worker if it has one, else as soft does.
* **soft**: a task goes to a manager with an idle warm worker of its type
  (a warm hit); else to a manager chosen at random among those with an
  unused slot, which starts a worker of that type there (a cold start);
  else to one whose idle worker of another type it may replace (a cold
  start that evicts): of the type whose tasks came longest ago. No task
  waits on a timer.

``route`` takes one task per type per turn, so a type that no manager can
take now never holds back a type that one can, and one type's backlog does
not take every unused slot before another type's first task; and it places
every warm hit before any cold start, and cold starts before replacements.
"""

import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

RAW = "RAW"
HARD, SOFT, RANDOM = "hard", "soft", "random"
# Waiting for a busy worker of its own type beats evicting another type's idle one while the type's tasks
# typically run shorter than a container's cold start (podman's is 0.2-0.5 s here, Singularity's seconds).
WAIT_BUDGET = 1.0


def runtime_of(ctype: str) -> str | None:
    """The runtime a type needs (None for RAW)."""
    return None if ctype == RAW else ctype.partition(":")[0]


class Placement(StrEnum):
    WARM = "warm"  # an idle worker of the task's type takes it
    COLD = "cold"  # a new worker of its type starts in an unused slot
    REPLACE = "replace"  # an idle worker of another type is stopped, and one of its type starts


@dataclass
class Offer:
    """What one manager can take now."""

    manager_id: str
    warm_idle: dict[str, int] = field(default_factory=dict)  # type -> idle workers of that type
    unused: int = 0  # slots with no worker
    runtimes: frozenset[str] = frozenset()  # what it can start workers in (besides RAW)
    fixed_type: str | None = None  # hard routing: the one type it serves

    def can_run(self, ctype: str) -> bool:
        if self.fixed_type is not None:
            return ctype == self.fixed_type
        runtime = runtime_of(ctype)
        return runtime is None or runtime in self.runtimes

    def idle_others(self, ctype: str) -> list[str]:
        """The types of which this manager has an idle worker, other than ``ctype``."""
        return [t for t, n in self.warm_idle.items() if t != ctype and n > 0]


@dataclass(frozen=True)
class Decision:
    manager_id: str
    placement: Placement
    evicts: str | None = None  # the type whose idle worker is replaced


class Router:
    def __init__(self, mode: str = SOFT, rng: random.Random | None = None):
        if mode not in (HARD, SOFT, RANDOM):
            raise ValueError(f"unknown routing mode {mode!r}; expected {HARD}, {SOFT} or {RANDOM}")
        self.mode = mode
        self.rng = rng or random.Random()
        self.counts = {placement: 0 for placement in Placement}
        self._clock = 0  # placements so far: orders the types by when their tasks last came
        self._last_used: dict[str, int] = {}
        self._typical: dict[str, float] = {}  # seconds a task of each type takes, placed to result (a moving mean)

    def ran(self, ctype: str, seconds: float) -> None:
        """A task of ``ctype`` came back ``seconds`` after it was placed."""
        before = self._typical.get(ctype)
        self._typical[ctype] = seconds if before is None else 0.8 * before + 0.2 * seconds

    def patient(self, ctype: str, queued: int, running: int) -> bool:
        """Soft routing: whether the queued tasks of ``ctype`` had better wait for its busy workers than evict
        another type's idle one: no more of them than are running, and those are short."""
        typical = self._typical.get(ctype)
        return (self.mode == SOFT and 0 < queued <= running and typical is not None and typical < WAIT_BUDGET)

    def place(self, ctype: str, offers: Iterable[Offer], upto: Placement = Placement.REPLACE) -> Decision | None:
        """Where a task of ``ctype`` runs now, or None if no manager can take it yet (placing no worse than
        ``upto``: WARM only, WARM or COLD, or any). Counts down the offer."""
        capable = [o for o in offers if o.can_run(ctype)]
        if self.mode == RANDOM:  # the baseline soft routing is measured against: any manager with room
            capable = [o for o in capable if o.unused > 0 or o.idle_others("")]
            if not capable:
                return None
            capable = [self.rng.choice(capable)]
        warm = [o for o in capable if o.warm_idle.get(ctype, 0) > 0]
        if warm:
            offer = max(warm, key=lambda o: o.warm_idle[ctype])
            offer.warm_idle[ctype] -= 1
            return self._decided(Decision(offer.manager_id, Placement.WARM), ctype)
        if self.mode == HARD or upto == Placement.WARM:
            return None  # (hard: a manager's workers are all of its type, so none is free)
        roomy = [o for o in capable if o.unused > 0]
        if roomy:
            offer = self.rng.choice(roomy)
            offer.unused -= 1
            return self._decided(Decision(offer.manager_id, Placement.COLD), ctype)
        if upto == Placement.COLD:
            return None
        replaceable = [(o, other) for o in capable for other in o.idle_others(ctype)]
        if replaceable:
            offer, other = self._least_recently_used(replaceable)
            offer.warm_idle[other] -= 1
            return self._decided(Decision(offer.manager_id, Placement.REPLACE, evicts=other), ctype)
        return None

    def _least_recently_used(self, candidates: list[tuple[Offer, str]]) -> tuple[Offer, str]:
        """Soft routing evicts a worker of the type whose tasks came longest ago (the least likely to come next);
        random routing, any."""
        if self.mode == RANDOM:
            return self.rng.choice(candidates)
        oldest = min(self._last_used.get(other, -1) for _, other in candidates)
        return self.rng.choice([c for c in candidates if self._last_used.get(c[1], -1) == oldest])

    def _decided(self, decision: Decision, ctype: str) -> Decision:
        self.counts[decision.placement] += 1
        self._clock += 1
        self._last_used[ctype] = self._clock
        return decision


def route(router: Router, queues: dict[str, deque[str]], offers: list[Offer],
          running: Mapping[str, int] | None = None) -> list[tuple[str, Decision]]:
    """Place queued tasks (by id); placed tasks leave their queue. ``running``: tasks of each type at managers.

    Three passes, each taking one task per type per turn: warm hits first for every type, then new workers in
    unused slots, then replacements. So a type's own idle warm worker is never taken from it by another type's
    replacement in the same round; and a type whose few queued tasks will soon find its busy workers free (see
    Router.patient) replaces nothing.
    """
    running = running or Counter()
    placed: list[tuple[str, Decision]] = []
    for upto in (Placement.WARM, Placement.COLD, Placement.REPLACE):
        waiting = [ctype for ctype, queue in queues.items() if queue]
        if upto == Placement.REPLACE:
            waiting = [t for t in waiting if not router.patient(t, len(queues[t]), running.get(t, 0))]
        while waiting:
            still = []
            for ctype in waiting:
                decision = router.place(ctype, offers, upto)
                if decision is None:
                    continue  # nothing can take this type now: the others go on
                placed.append((queues[ctype].popleft(), decision))
                if queues[ctype]:
                    still.append(ctype)
            waiting = still
    return placed
