"""When to add and remove blocks: Parsl's strategies, as pure decisions.

``none`` provisions ``init_blocks`` and nothing more. ``simple`` adds blocks
while tasks outnumber slots (times ``parallelism``) and, once the endpoint has
had no task for ``max_idletime``, removes all blocks above ``min_blocks``.
``htex_auto_scale`` also removes blocks while tasks are still running
elsewhere, but only blocks whose managers have been idle for ``max_idletime``.
The rules and their order follow Parsl's ``Strategy._general_strategy``; one
rule is ours: blocks are added to get back up to ``min_blocks`` after some
ended, where Parsl waits for work.
"""

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Engine

NONE, SIMPLE, HTEX_AUTO_SCALE = "none", "simple", "htex_auto_scale"


@dataclass
class Load:
    """What the strategy sees at one tick."""

    outstanding: int  # tasks the endpoint holds without a result
    active_blocks: int  # pending, running or held: every block that counts against max_blocks
    slots_per_block: int  # workers per node times nodes per block
    # blocks that may be removed, best first: those no manager has reached yet, then idle ones, most idle first;
    # each with how long it has been idle (infinity for one that never started)
    removable: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Decision:
    add: int = 0
    remove: list[str] = field(default_factory=list)
    rule: str = "steady"  # which rule decided, for the log and the tests


class Strategy:
    def __init__(self, kind: str, min_blocks: int, max_blocks: int, parallelism: float, max_idletime: float):
        self.kind = kind
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.max_idletime = max_idletime
        self.idle_since: float | None = None  # when the endpoint last ran out of tasks

    @classmethod
    def for_engine(cls, engine: "Engine") -> "Strategy":
        provider = engine.provider
        return cls(engine.strategy or "none", provider.min_blocks, provider.max_blocks, float(provider.parallelism),
                   engine.job_status_kwargs.max_idletime)

    def decide(self, load: Load, now: float) -> Decision:
        if self.kind == NONE:
            return Decision(rule="none")
        if load.outstanding > 0:
            self.idle_since = None
        if load.active_blocks < self.min_blocks:
            return Decision(add=self.min_blocks - load.active_blocks, rule="below min_blocks")
        if load.outstanding == 0:
            return self._idle(load, now)
        slots = load.active_blocks * load.slots_per_block
        if slots / load.outstanding < self.parallelism:
            if load.active_blocks >= self.max_blocks:
                return Decision(rule="short of slots, at max_blocks")
            wanted = math.ceil(load.outstanding * self.parallelism - slots)
            blocks = min(math.ceil(wanted / load.slots_per_block), self.max_blocks - load.active_blocks)
            return Decision(add=blocks, rule="short of slots")
        if slots == 0:  # parallelism 0: one block at a time
            return Decision(add=int(load.active_blocks < self.max_blocks), rule="tasks but no slots")
        if slots > load.outstanding and self.kind == HTEX_AUTO_SCALE and load.active_blocks > self.min_blocks:
            spare = math.floor((slots - load.outstanding * self.parallelism) / load.slots_per_block)
            spare = min(spare, load.active_blocks - self.min_blocks)
            idle = [block for block, seconds in load.removable if seconds >= self.max_idletime]
            return Decision(remove=idle[:spare], rule="more slots than tasks")
        return Decision()

    def _idle(self, load: Load, now: float) -> Decision:
        if load.active_blocks <= self.min_blocks:
            return Decision(rule="no tasks, at min_blocks")
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < self.max_idletime:
            return Decision(rule="no tasks, waiting for max_idletime")
        return Decision(remove=[block for block, _ in load.removable][:load.active_blocks - self.min_blocks],
                        rule="no tasks for max_idletime")
