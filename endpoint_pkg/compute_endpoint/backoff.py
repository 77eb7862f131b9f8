"""Delays between attempts to reach something that went away: a broker, an interchange."""

import random
from collections.abc import Callable


class Backoff:
    """Delays between reconnection attempts: doubling from ``first`` up to ``last`` seconds.

    Each delay is drawn between half and all of its step, so that the many
    clients a broker restart disconnects at once do not all return at once.
    """

    def __init__(self, first: float = 0.5, last: float = 30.0, rng: Callable[[], float] = random.random):
        self.first = first
        self.last = last
        self._rng = rng
        self.attempts = 0

    def step(self, attempt: int) -> float:
        """The upper bound of the delay before attempt number ``attempt`` (0-based)."""
        return min(self.last, self.first * 2 ** min(attempt, 32))

    def next_delay(self) -> float:
        step = self.step(self.attempts)
        self.attempts += 1
        return step * self.jitter()

    def jitter(self) -> float:
        """A factor between 0.5 and 1 to spread clients that lost their connection at the same moment."""
        return 0.5 + self._rng() / 2

    def reset(self) -> None:
        """Connected again: the next loss starts from the shortest delay."""
        self.attempts = 0
