"""The embedded validators on an event loop of their own, in a thread of the service.

The embedded default runs its four validators in the service's process. Their consensus
stores write synchronously (safety state on disk before every vote, then blocks, commits
and checkpoints, each with an fsync): on the API's event loop every one of those stalls
every request in flight. On a loop of their own they stall only the validators, and the
API keeps serving while they wait for the disk (the GIL is released during the wait).

:class:`ThreadedChain` starts :func:`chain.node.inprocess.start_embedded` on that loop and
offers the ledger operations the service uses (``LedgerClientProtocol``), each forwarded
to the validators' loop and answered on the caller's. Cancelling a call cancels it there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chain.checkpoint import parse_checkpoint
from chain.node.inprocess import EmbeddedChain, start_embedded
from chain.node.results import CommitInfo, ConsistencyProof, InclusionProof, SubmitResult
from chain.note import parse_note
from chain.trust import TrustFile

_T = TypeVar("_T")


class ThreadedChain:
    """Embedded validators running on their own event loop in a daemon thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        """Use :meth:`start`."""
        self._loop = loop
        self._thread = thread
        self._chain: EmbeddedChain | None = None
        self._closed = False

    @classmethod
    async def start(cls, data_dir: Path, **options: Any) -> ThreadedChain:
        """Start a thread with an event loop and the embedded validators on it;
        ``options`` go to :func:`~chain.node.inprocess.start_embedded`."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="embedded-validators", daemon=True
        )
        thread.start()
        self = cls(loop, thread)
        try:
            self._chain = await self._call(start_embedded(data_dir, **options))
        except BaseException:
            await self._stop_loop()
            raise
        return self

    @property
    def trust(self) -> TrustFile:
        """The validator set."""
        return self._embedded.trust

    @property
    def trust_path(self) -> Path:
        """Where the trust file is (what verifiers need)."""
        return self._embedded.trust_path

    @property
    def _embedded(self) -> EmbeddedChain:
        if self._chain is None:
            raise RuntimeError("the embedded chain is not started")
        return self._chain

    async def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise RuntimeError("the embedded chain is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Admit a batch of entries to the validators' mempool."""
        return await self._call(self._embedded.submit(entries))

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Wait until the entry is committed; raises CommitTimeoutError."""
        return await self._call(self._embedded.wait_committed(entry_hash, timeout))

    async def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note, or None before the first one."""
        return await self._call(self._embedded.latest_checkpoint())

    async def latest_with_proof(self, leaf_index: int) -> tuple[str | None, InclusionProof | None]:
        """The latest checkpoint note and, if its tree holds leaf ``leaf_index``, the
        leaf's inclusion proof in that tree; one trip to the validators' loop."""
        return await self._call(_latest_with_proof(self._embedded, leaf_index))

    async def wait_signed(
        self, entry_hashes: Sequence[bytes], timeout: float, prove: Sequence[bool]
    ) -> list[Covered | BaseException]:
        """For each entry, once it is committed and a checkpoint covering it is signed
        (of its tree size or larger): where it landed, with that checkpoint and the
        entry's inclusion proof where ``prove`` says so; or the error (e.g.
        CommitTimeoutError). One trip to the validators' loop for the whole batch (a trip
        per entry and step costs both loops a wake-up each way)."""
        return await self._call(_wait_signed(self._embedded, entry_hashes, timeout, prove))

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size`` (waiting up to ``timeout``)."""
        return await self._call(self._embedded.checkpoint(tree_size, timeout))

    async def checkpoint_covering(self, tree_size: int, timeout: float = 0.0) -> str:
        """The smallest committed checkpoint of size >= ``tree_size``."""
        return await self._call(self._embedded.checkpoint_covering(tree_size, timeout))

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof by leaf index or entry hash in the tree of ``tree_size``."""
        return await self._call(
            self._embedded.inclusion_proof(tree_size, leaf_index=leaf_index, entry_hash=entry_hash)
        )

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two tree sizes."""
        return await self._call(self._embedded.consistency_proof(old_size, new_size))

    async def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` as JSON."""
        return await self._call(self._embedded.block(height))

    async def status(self) -> dict[str, Any]:
        """Height, view, tree size and latest checkpoint."""
        return await self._call(self._embedded.status())

    async def close(self) -> None:
        """Stop the validators, then their loop and thread (idempotent)."""
        if self._closed:
            return
        try:
            if self._chain is not None:
                await self._call(self._chain.close())
                await self._call(_cancel_the_others())
        finally:
            self._closed = True
            await self._stop_loop()

    async def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._loop.close()


async def _latest_with_proof(
    chain: EmbeddedChain, leaf_index: int
) -> tuple[str | None, InclusionProof | None]:
    note = await chain.latest_checkpoint()
    if note is None:
        return None, None
    size = parse_checkpoint(parse_note(note).text).size
    if leaf_index >= size:
        return note, None
    return note, await chain.inclusion_proof(size, leaf_index=leaf_index)


@dataclass(frozen=True)
class Covered:
    """An entry committed and covered by a signed checkpoint: where it landed and, if it
    was asked for, the first checkpoint covering it with the entry's inclusion proof in
    that checkpoint's tree (all a receipt needs)."""

    info: CommitInfo
    checkpoint: str | None = None
    tree_size: int | None = None
    proof: tuple[bytes, ...] | None = None


async def _wait_signed(
    chain: EmbeddedChain, entry_hashes: Sequence[bytes], timeout: float, prove: Sequence[bool]
) -> list[Covered | BaseException]:
    sizes: dict[str, int] = {}  # note -> its tree size (the entries of a block share one)

    async def one(entry_hash: bytes, want_proof: bool) -> Covered:
        info = await chain.wait_committed(entry_hash, timeout)
        note = await chain.checkpoint_covering(info.tree_size, timeout)
        if not want_proof:
            return Covered(info)
        size = sizes.get(note)
        if size is None:
            size = sizes[note] = parse_checkpoint(parse_note(note).text).size
        proof = await chain.inclusion_proof(size, leaf_index=info.leaf_index)
        return Covered(info, note, size, tuple(proof.hashes))

    return await asyncio.gather(
        *(one(h, w) for h, w in zip(entry_hashes, prove, strict=True)), return_exceptions=True
    )


async def _cancel_the_others() -> None:
    """Cancel what is still running on this loop (waiters of calls never answered)."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in others:
        t.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


if TYPE_CHECKING:  # the service takes it for a ledger
    from chain.node.client import LedgerClientProtocol

    _check: LedgerClientProtocol = ThreadedChain(asyncio.new_event_loop(), threading.Thread())
