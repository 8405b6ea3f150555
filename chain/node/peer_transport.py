"""The consensus :class:`~chain.consensus.transport.Transport` over aiohttp.

Every message leaves as its wire frame (:mod:`chain.node.wire`) in an HTTP POST to
``<peer>/peer/v1/messages``; one long-lived keep-alive session, one sender task and one
bounded queue per peer. The sender drains its queue into batches (one POST carries many
frames), so a slow peer costs one queue, never the node: when the queue is full the
oldest frame is dropped (consensus tolerates loss; catch-up refetches blocks). A failed
POST marks the peer down and the sender backs off exponentially (with jitter) before
reconnecting. Headers ``X-Notary-Chain`` and ``X-Notary-Peer`` carry the chain id and the
sender's name (a return address only: every consensus message authenticates itself by
signature, bound to chain id and view).

Submitted entries travel apart from that stream: :meth:`HttpTransport.replicate` posts them
to as many validators as needed (``<peer>/peer/v1/entries``), the preferred first and the
next ones in place of any that fail, and reports how many took them into their mempools,
so a node acknowledges a submission only once other validators hold it too.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from chain.consensus.messages import Message
from chain.node.wire import encode_batch, encode_message

logger = logging.getLogger(__name__)

PEER_PATH = "/peer/v1/messages"
PEER_ENTRIES_PATH = "/peer/v1/entries"
CHAIN_HEADER = "X-Notary-Chain"
PEER_HEADER = "X-Notary-Peer"
BATCH_BYTES = 8 << 20
BATCH_FRAMES = 512


@dataclass
class PeerState:
    """One peer's queue and link state."""

    name: str
    url: str
    queue: collections.deque[bytes]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    up: bool = False
    last_ok: float = 0.0
    failures: int = 0
    dropped: int = 0
    sent: int = 0


class HttpTransport:
    """Sends consensus messages to named peers over HTTP(S); see the module docstring."""

    def __init__(
        self,
        name: str,
        chain_id: str,
        peers: dict[str, str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        queue_size: int = 4096,
        request_timeout_s: float = 10.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        """``peers``: name -> base URL (this node's own name is ignored)."""
        self.name = name
        self.chain_id = chain_id
        self._ssl = ssl_context
        self._timeout = request_timeout_s
        self._max_backoff = max_backoff_s
        self.peers: dict[str, PeerState] = {
            n: PeerState(n, url.rstrip("/"), collections.deque(maxlen=queue_size))
            for n, url in peers.items()
            if n != name
        }
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._replications: set[asyncio.Task[bool]] = set()
        self._closed = False
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    # -- Transport protocol ----------------------------------------------------------

    def send(self, to: str, message: Message) -> None:
        """Queue ``message`` for ``to`` (dropped if ``to`` is unknown)."""
        peer = self.peers.get(to)
        if peer is not None and not self._closed:
            self._enqueue(peer, encode_message(message))

    def send_frame(self, to: str, frame: bytes) -> None:
        """Queue an already encoded frame for ``to`` (node-level traffic)."""
        peer = self.peers.get(to)
        if peer is not None and not self._closed:
            self._enqueue(peer, frame)

    def broadcast(self, message: Message) -> None:
        """Queue ``message`` for every peer (encoded once)."""
        if self._closed:
            return
        frame = encode_message(message)
        for peer in self.peers.values():
            self._enqueue(peer, frame)

    def _enqueue(self, peer: PeerState, frame: bytes) -> None:
        if len(peer.queue) == peer.queue.maxlen:
            peer.dropped += 1  # deque(maxlen) drops the oldest frame
        peer.queue.append(frame)
        peer.wake.set()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open the session and start one sender task per peer (on the running loop)."""
        connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={CHAIN_HEADER: self.chain_id, PEER_HEADER: self.name},
        )
        for peer in self.peers.values():
            self._tasks.append(asyncio.create_task(self._sender(peer), name=f"peer-{peer.name}"))

    async def replicate(
        self, frame: bytes, to: Sequence[str], needed: int, timeout_s: float
    ) -> int:
        """Post the entries ``frame`` to ``needed`` peers, taken in the order of ``to``
        (the preferred first), replacing each that fails with the next one; return how
        many took it into their mempool (2xx): ``needed`` unless the candidates ran out
        or ``timeout_s`` passed first."""
        if self._session is None or self._closed or needed <= 0:
            return 0
        candidates = [self.peers[n] for n in to if n in self.peers]
        pending: set[asyncio.Task[bool]] = set()

        def launch() -> None:
            peer = candidates.pop(0)
            task = asyncio.create_task(self._post_entries(peer, frame))
            self._replications.add(task)
            task.add_done_callback(self._replications.discard)
            pending.add(task)

        while candidates and len(pending) < needed:
            launch()
        acked = 0
        deadline = time.monotonic() + timeout_s
        while pending and acked < needed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if not task.cancelled() and task.exception() is None and task.result():
                    acked += 1
                elif candidates:
                    launch()
        return acked

    async def _post_entries(self, peer: PeerState, frame: bytes) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(
                peer.url + PEER_ENTRIES_PATH,
                data=frame,
                headers={"Content-Type": "application/octet-stream"},
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            logger.debug("%s: entries not replicated to %s: %s", self.name, peer.name, e)
            return False

    async def close(self) -> None:
        """Stop the senders and close the session; queued frames are discarded."""
        self._closed = True
        for task in [*self._tasks, *self._replications]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._replications, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def peers_up(self) -> list[str]:
        """Peers whose last delivery attempt succeeded."""
        return sorted(p.name for p in self.peers.values() if p.up)

    def stats(self) -> dict[str, dict[str, object]]:
        """Per-peer counters (for status and debugging)."""
        return {
            p.name: {"up": p.up, "queued": len(p.queue), "sent": p.sent, "dropped": p.dropped}
            for p in self.peers.values()
        }

    # -- the sender of one peer ----------------------------------------------------------

    async def _sender(self, peer: PeerState) -> None:
        assert self._session is not None
        url = peer.url + PEER_PATH
        while not self._closed:
            if not peer.queue:
                peer.wake.clear()
                await peer.wake.wait()
                continue
            frames: list[bytes] = []
            size = 0
            while peer.queue and len(frames) < BATCH_FRAMES and size < BATCH_BYTES:
                frame = peer.queue.popleft()
                frames.append(frame)
                size += len(frame)
            try:
                async with self._session.post(
                    url,
                    data=encode_batch(frames),
                    headers={"Content-Type": "application/octet-stream"},
                ) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        raise aiohttp.ClientResponseError(
                            resp.request_info, (), status=resp.status, message=resp.reason or ""
                        )
                peer.sent += len(frames)
                if not peer.up:
                    logger.info("%s: peer %s is up", self.name, peer.name)
                peer.up = True
                peer.failures = 0
                peer.last_ok = time.monotonic()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                peer.dropped += len(frames)
                if peer.up or peer.failures == 0:
                    logger.warning("%s: peer %s unreachable: %s", self.name, peer.name, e)
                peer.up = False
                peer.failures += 1
                delay = min(self._max_backoff, 0.05 * 2 ** min(peer.failures, 10))
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
