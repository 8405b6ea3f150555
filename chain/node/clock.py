"""The asyncio :class:`~chain.consensus.transport.Clock` of a real node."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chain.consensus.transport import Timer

logger = logging.getLogger(__name__)


class AsyncioClock:
    """Wall-clock milliseconds and timers on one asyncio event loop.

    ``on_error`` receives any exception a callback raises (the node uses it to stop on a
    safety violation instead of letting the loop log and carry on).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Bind to ``loop`` (default: the running loop; precondition: one is running)."""
        self._loop = loop or asyncio.get_running_loop()
        self._on_error = on_error
        self.stopped = False

    def stop(self) -> None:
        """From now on, timers that come due do nothing (the node is shutting down)."""
        self.stopped = True

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the loop after ``delay_ms`` (0: as soon as possible)."""
        run = self._wrap(callback)
        if delay_ms <= 0:
            return self._loop.call_soon(run)
        return self._loop.call_later(delay_ms / 1000.0, run)

    def _wrap(self, callback: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.stopped:
                return
            try:
                callback()
            except Exception as e:
                if self._on_error is None:
                    raise
                self._on_error(e)

        return run
