"""A target's connection budget: how many connections may be open at once, and how fast new
ones may be opened.  A student's small server never sees more than this from one run."""

from __future__ import annotations

import time
from typing import Callable

from mailconform.wire.errors import WireError


class BudgetExceeded(WireError):
    """A check asked for more simultaneous connections than the target's budget allows."""


class ConnectionBudget:
    """At most ``concurrent`` connections open at once and ``per_second`` new ones per second.

    The rate is a token bucket: a burst of up to ``per_second`` connections goes at once, then
    opening waits for its turn.  Exceeding ``concurrent`` is refused at once (checks of one target
    run one after the other, so only a check that holds too many sessions itself can exceed it,
    and waiting would never end)."""

    def __init__(self, concurrent: int, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.concurrent = concurrent
        self.rate = per_second
        self.capacity = max(1.0, per_second)
        self.clock = clock
        self.sleep = sleep
        self.open = 0       # connections open now
        self.opened = 0     # connections opened in this run
        self.peak = 0       # most connections open at once
        self._tokens = self.capacity
        self._filled_at = clock()

    def acquire(self, endpoint: str) -> Callable[[], None]:
        """Wait for this connection's turn; return the function that gives the slot back."""
        if self.open >= self.concurrent:
            raise BudgetExceeded(f"a connection to {endpoint} would be number {self.open + 1} open at once; "
                                 f"the target allows {self.concurrent} (max_connections)")
        self._refill()
        if self._tokens < 1:
            self.sleep((1 - self._tokens) / self.rate)
            self._refill()
        self._tokens -= 1
        self.open += 1
        self.opened += 1
        self.peak = max(self.peak, self.open)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        return release

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
