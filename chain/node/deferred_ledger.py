"""A :class:`~chain.consensus.ledger.Ledger` that takes the durable Merkle-log append off
the vote's critical path.

When a replica commits a block it marks the block committed in its consensus store
(durable) and then appends the entries to its log (:func:`chain.consensus.ledger.apply_block`).
The append is the most expensive step of a block (an SQLite insert per entry and two
fsyncs), and it runs inside the handler of the proposal that carried the commit, before
the replica votes. This wrapper answers ``append`` at once with the size and root the
log will have (from an in-memory frontier: leaf hashes and O(log n) node hashes) and
writes to the :class:`~chain.log.MerkleLog` from a callback scheduled right after the
handler, so the vote leaves first; consecutive pending blocks become one append.

Safety is unchanged: the store marks a block committed before its entries reach the log
in any case, and :func:`chain.consensus.ledger.recover` replays committed blocks a log
lacks after a crash ("behind, never ahead"). Every read (entries, lookups, proofs)
flushes pending appends first, so callers see the log as committed. A failed flush is
reported to ``on_error`` (the node halts: its log can no longer follow the chain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chain.errors import LogError
from chain.log import MerkleLog
from chain.merkle import CompactRange, leaf_hash

Schedule = Callable[[Callable[[], None]], object]


class DeferredLedger:
    """A MerkleLog whose appends are acknowledged now and written a moment later."""

    def __init__(
        self,
        log: MerkleLog,
        schedule: Schedule,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Wrap ``log``; ``schedule(fn)`` runs ``fn`` soon on the same event loop."""
        self.log = log
        self._schedule = schedule
        self._on_error = on_error
        self._frontier = log.compact_range()
        self._pending: list[bytes] = []
        self._scheduled = False
        self.failed: BaseException | None = None

    @property
    def size(self) -> int:
        """Entries committed (written or pending)."""
        return self._frontier.size

    def root(self) -> bytes:
        """Root over all committed entries."""
        return self._frontier.root()

    def compact_range(self) -> CompactRange:
        """Frontier over all committed entries."""
        return self._frontier

    def append(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """Accept ``entries`` (durably written by the next flush); return (size, root)."""
        if self.failed is not None:
            raise LogError(f"the Merkle log failed earlier: {self.failed}")
        self._frontier = self._frontier.append([leaf_hash(e) for e in entries])
        self._pending.extend(entries)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self._flush_scheduled)
        return self._frontier.size, self._frontier.root()

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        try:
            self.flush()
        except LogError as e:
            if self._on_error is None:
                raise
            self._on_error(e)

    def flush(self) -> None:
        """Write pending entries to the log now (durable when this returns)."""
        if not self._pending:
            return
        if self.failed is not None:
            raise LogError(f"the Merkle log failed earlier: {self.failed}")
        pending, self._pending = self._pending, []
        try:
            size, root = self.log.append(pending)
        except LogError as e:
            self.failed = e
            raise
        if (size, root) != (self._frontier.size, self._frontier.root()):
            self.failed = LogError(f"log at size {size} disagrees with the committed chain")
            raise self.failed

    @property
    def pending(self) -> int:
        """Entries accepted but not yet written."""
        return len(self._pending)

    def entry(self, index: int) -> bytes:
        """Entry ``index``."""
        self.flush()
        return self.log.entry(index)

    def leaf_index(self, leaf: bytes) -> int | None:
        """Index of the first entry with leaf hash ``leaf``."""
        self.flush()
        return self.log.leaf_index(leaf)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of ``index`` in the tree of ``size``."""
        self.flush()
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes."""
        self.flush()
        return self.log.consistency_proof(old_size, new_size)

    def close(self) -> None:
        """Flush what is pending (if the log still works), then close the log."""
        try:
            if self.failed is None:
                self.flush()
        finally:
            self.log.close()
