"""The client-facing API of a replica, used by the HTTP layer and the in-process mode.

Runs on the replica's event loop (asyncio). Submissions go to the mempool (back-pressure:
:class:`MempoolFullError`); :meth:`LedgerAPI.wait_committed` resolves when the entry is
in a committed block; proofs and checkpoints come from the replica's ledger and store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from chain.consensus.blocks import GENESIS, Block
from chain.consensus.core import Core
from chain.consensus.errors import InvalidMessageError, UnknownBlockError
from chain.errors import MempoolFullError
from chain.merkle import leaf_hash


@dataclass(frozen=True)
class Committed:
    """Where a committed entry is: its leaf index, its block, the tree size after it."""

    leaf_index: int
    height: int
    tree_size: int


class LedgerAPI:
    """Submit entries, wait for commits, read checkpoints, proofs and blocks."""

    def __init__(self, core: Core) -> None:
        """Serve ``core`` (a validator with a mempool, or an observer for reads only)."""
        self.core = core
        self._waiters: dict[bytes, list[asyncio.Future[Committed]]] = {}
        core.commit_listeners.append(self._on_commit)

    def submit_entries(self, entries: Sequence[bytes]) -> list[bytes]:
        """Queue ``entries``; return their leaf hashes. Already committed ones are skipped.

        Raises :class:`MempoolFullError` (retry later) and :class:`InvalidMessageError`
        (an empty or oversized entry); all or nothing.
        """
        mempool = self.core.mempool
        if mempool is None:
            raise MempoolFullError("this replica does not accept entries")
        fresh = [e for e in entries if self.core.ledger.leaf_index(leaf_hash(e)) is None]
        mempool.add(fresh)
        return [leaf_hash(e) for e in entries]

    async def wait_committed(self, leaf: bytes) -> Committed:
        """Wait until the entry with leaf hash ``leaf`` is committed; return where it is."""
        found = self.committed(leaf)
        if found is not None:
            return found
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(leaf, []).append(future)
        try:
            return await future
        finally:
            waiters = self._waiters.get(leaf)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[leaf]

    def committed(self, leaf: bytes) -> Committed | None:
        """Where the entry with leaf hash ``leaf`` is committed, or None."""
        index = self.core.ledger.leaf_index(leaf)
        if index is None:
            return None
        block = self._block_containing(index)
        return Committed(index, block.height, block.tree_size)

    def _block_containing(self, index: int) -> Block:
        lo, hi = 1, self.core.head.height
        while lo < hi:  # the first committed block whose tree_size exceeds index
            mid = (lo + hi) // 2
            block = self.core.store.committed_block(mid)
            if block is None:
                raise UnknownBlockError(f"committed block {mid} missing")
            if block.tree_size > index:
                hi = mid
            else:
                lo = mid + 1
        block = self.core.store.committed_block(lo)
        if block is None:
            raise UnknownBlockError(f"committed block {lo} missing")
        return block

    def _on_commit(self, block: Block) -> None:
        first = block.tree_size - len(block.entries)
        for i, leaf in enumerate(block.leaf_hashes):
            for future in self._waiters.pop(leaf, []):
                if not future.done():
                    future.set_result(Committed(first + i, block.height, block.tree_size))

    def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note (2f+1 signatures), or None yet."""
        return self.core.store.checkpoint()

    def checkpoint(self, tree_size: int) -> str | None:
        """The committed checkpoint note for ``tree_size``, or None."""
        return self.core.store.checkpoint(tree_size)

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of ``leaf_index`` in the tree of ``tree_size``."""
        self._check_size(tree_size)
        if not 0 <= leaf_index < tree_size:
            raise InvalidMessageError(f"leaf {leaf_index} is not in a tree of {tree_size}")
        return self.core.ledger.inclusion_proof(leaf_index, tree_size)

    def inclusion_proof_by_hash(self, leaf: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        """(leaf index, proof) of the entry with leaf hash ``leaf`` in ``tree_size``."""
        index = self.core.ledger.leaf_index(leaf)
        if index is None:
            raise UnknownBlockError("no committed entry has this leaf hash")
        return index, self.inclusion_proof(index, tree_size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof from ``old_size`` to ``new_size``."""
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise InvalidMessageError(f"no consistency proof from {old_size} to {new_size}")
        return self.core.ledger.consistency_proof(old_size, new_size)

    def block(self, height: int) -> Block | None:
        """The committed block at ``height`` (0 is genesis), or None."""
        if height == 0:
            return GENESIS
        return self.core.store.committed_block(height)

    def _check_size(self, tree_size: int) -> None:
        if not 0 <= tree_size <= self.core.ledger.size:
            raise InvalidMessageError(
                f"tree size {tree_size} is beyond the committed size {self.core.ledger.size}"
            )
