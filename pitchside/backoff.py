"""Retry delays (a camera reconnecting, a reader waiting for Redis): capped exponential backoff
with full jitter.

The n-th delay after the last success is drawn uniformly from ``[0, min(cap, initial *
2**n)]`` (AWS's "full jitter"), so that cameras that dropped out together do not all call
back at the same instant; a connection that delivered frames starts the sequence over.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays before each reconnection attempt.

    Args:
        initial_s: the bound of the first delay.
        cap_s: no delay is longer than this.
        rng: the source of jitter (a seeded ``random.Random`` in tests).
    """

    def __init__(self, initial_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= cap_s:
            raise ValueError(f"backoff needs 0 < initial_s <= cap_s, got {initial_s}, {cap_s}")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempts = 0  # since the last reset
        self._rng = rng or random.Random()

    def bound_s(self) -> float:
        """The longest the next delay can be."""
        return min(self.cap_s, self.initial_s * 2.0**self.attempts)

    def next_s(self) -> float:
        """The next delay, and one more attempt counted."""
        delay = self._rng.uniform(0.0, self.bound_s())
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """A connection succeeded: the next drop-out starts from ``initial_s`` again."""
        self.attempts = 0
