"""What the core needs from the outside world: a transport and a clock.

Both are injected. The HTTP transport (aiohttp) and the asyncio clock plug in for real
nodes; :class:`InMemoryNetwork` serves the in-process mode; the simulation brings its own
seeded network and logical clock. Inbound messages are handed to ``Core.handle(sender,
message)`` by whoever owns the event loop; the sender name is only a return address for
sync replies, every consensus message authenticates itself by signature.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from chain.consensus.messages import Message


class Transport(Protocol):
    """Sends messages to named peers (validators and observers)."""

    def send(self, to: str, message: Message) -> None:
        """Queue ``message`` for peer ``to``; never blocks, may silently drop."""
        ...

    def broadcast(self, message: Message) -> None:
        """Queue ``message`` for every peer except this node."""
        ...


class Timer(Protocol):
    """A scheduled callback."""

    def cancel(self) -> None:
        """Do not run the callback (no-op if it already ran)."""
        ...


class Clock(Protocol):
    """Time and timers, in milliseconds."""

    def now_ms(self) -> int:
        """The current time in milliseconds since the Unix epoch (or a logical origin)."""
        ...

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the node's event loop after ``delay_ms``."""
        ...


Handler = Callable[[str, Message], None]


class InMemoryNetwork:
    """Nodes in one process; delivery goes through ``schedule`` (e.g. ``loop.call_soon``)
    so a handler never runs inside another node's handler."""

    def __init__(self, schedule: Callable[[Callable[[], None]], object]) -> None:
        """``schedule(fn)`` runs ``fn`` later on the shared event loop."""
        self._schedule = schedule
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> InMemoryTransport:
        """Attach node ``name``; its inbound messages go to ``handler``."""
        self._handlers[name] = handler
        return InMemoryTransport(self, name)

    def unregister(self, name: str) -> None:
        """Detach node ``name`` (messages to it are dropped)."""
        self._handlers.pop(name, None)

    def deliver(self, sender: str, to: str, message: Message) -> None:
        """Schedule delivery of ``message`` from ``sender`` to ``to`` (dropped if unknown)."""
        handler = self._handlers.get(to)
        if handler is not None:
            self._schedule(lambda: handler(sender, message))

    def peers(self) -> list[str]:
        """Names of all attached nodes."""
        return list(self._handlers)


class InMemoryTransport:
    """One node's view of an :class:`InMemoryNetwork`."""

    def __init__(self, network: InMemoryNetwork, name: str) -> None:
        """Use :meth:`InMemoryNetwork.register` instead."""
        self._network = network
        self.name = name

    def send(self, to: str, message: Message) -> None:
        """Deliver ``message`` to ``to`` later."""
        self._network.deliver(self.name, to, message)

    def broadcast(self, message: Message) -> None:
        """Deliver ``message`` to every other node later."""
        for peer in self._network.peers():
            if peer != self.name:
                self._network.deliver(self.name, peer, message)


class AsyncioClock:
    """Wall-clock time and timers on an asyncio event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use ``loop`` for timers (the loop the core's handlers run on)."""
        self._loop = loop

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the loop after ``delay_ms``."""
        return self._loop.call_later(max(0, delay_ms) / 1000, callback)
