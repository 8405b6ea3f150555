"""Logical time: a seeded, single-threaded event queue.

Events run in (time, insertion order); nothing depends on wall-clock time or hash order,
so one seed always replays the same schedule.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

EPOCH_MS = 1_700_000_000_000
"""Logical time starts here so block timestamps look like real ones."""


class SimTimer:
    """A cancellable scheduled callback."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback."""
        self.cancelled = True


class Scheduler:
    """A priority queue of callbacks on logical milliseconds."""

    def __init__(self) -> None:
        """Start at :data:`EPOCH_MS` with nothing scheduled."""
        self.now = EPOCH_MS
        self._queue: list[tuple[int, int, SimTimer, Callable[[], None]]] = []
        self._seq = 0
        self.steps = 0

    def call_later(self, delay_ms: int, fn: Callable[[], None]) -> SimTimer:
        """Run ``fn`` ``delay_ms`` (>= 0) after now."""
        timer = SimTimer()
        self._seq += 1
        heapq.heappush(self._queue, (self.now + max(0, delay_ms), self._seq, timer, fn))
        return timer

    def run_until(self, end_ms: int, stop: Callable[[], bool] | None = None) -> None:
        """Run events up to logical time ``end_ms``, or until ``stop()`` is true."""
        queue = self._queue
        while queue and queue[0][0] <= end_ms:
            when, _, timer, fn = heapq.heappop(queue)
            self.now = when
            if timer.cancelled:
                continue
            self.steps += 1
            fn()
            if stop is not None and self.steps % 64 == 0 and stop():
                return
        self.now = max(self.now, end_ms)
