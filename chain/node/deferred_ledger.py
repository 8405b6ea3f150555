"""A :class:`~chain.consensus.ledger.Ledger` that takes the durable Merkle-log append off
the vote's critical path and, given an executor, off the event loop.

When a replica commits a block it marks the block committed in its consensus store
(durable) and then appends the entries to its log (:func:`chain.consensus.ledger.apply_block`).
The append is the most expensive step of a block (an SQLite transaction inserting every
entry, and two fsyncs), and it would run inside the handler of the proposal that carried
the commit, before the replica votes. This wrapper answers ``append`` at once with the
size and root the log will have (the block's own, which the core verified against its
parent, or else from an in-memory frontier) and writes to the
:class:`~chain.log.MerkleLog` later; the write checks that root before anything reaches
the disk, and consecutive pending blocks become one write. Without an executor the
write runs in a callback scheduled right after the handler (the vote leaves first);
with one (a single worker thread in a node) it runs there, so the event loop keeps
handling messages while the write hashes and waits for its fsyncs; one write is in
flight at a time.

Safety is unchanged: the store marks a block committed before its entries reach the log
in any case (with ``before_write``, the store's commit barrier, the marker's fsync runs
on the writer thread right before the write instead of on the event loop), and
:func:`chain.consensus.ledger.recover` replays committed blocks a log lacks after a
crash ("behind, never ahead"). Reads see the log as committed without
waiting for the write: size and root are known, and lookups and entries come from the
log plus the entries not yet written; only a proof over a tree larger than the written
log waits for the write. A failed write is reported to ``on_error`` (the node halts:
its log can no longer follow the chain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future

from chain.errors import ChainError, LogError
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
        executor: Executor | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        """Wrap ``log``; ``schedule(fn)`` runs ``fn`` soon on the event loop (it must be
        thread-safe, e.g. ``loop.call_soon_threadsafe``, when ``executor`` is given).

        ``executor``: where writes run (None: on the loop, in the scheduled callback).
        It must run one write at a time in order; this object never submits a second
        write before the first one finished.

        ``before_write``, if given, runs right before each write of the log, on the
        thread that writes (the executor's, or the loop for a synchronous flush); the
        node passes its consensus store's commit barrier
        (:meth:`chain.consensus.sqlite_store.SqliteStore.commit_barrier`), which makes
        the committed markers durable before the entries they cover.
        """
        self.log = log
        self._before_write = before_write
        self._schedule = schedule
        self._on_error = on_error
        self._executor = executor
        # (size, root) after everything accepted, and its frontier when computed (an
        # append with ``expect`` leaves it to be computed on demand: nobody but a
        # restarting core asks for it, and the write checks the root anyway).
        self._tip: tuple[int, bytes] = (log.size, log.root())
        self._frontier: CompactRange | None = log.compact_range()
        # Entries accepted but not yet durable in the log, oldest first, starting at leaf
        # index self._unwritten_from: the write in flight (if any), then the pending ones.
        self._unwritten_from = log.size
        self._flight: list[bytes] = []
        self._flight_leaves: list[bytes] = []
        self._flight_future: Future[tuple[int, bytes]] | None = None
        self._flight_expect: tuple[int, bytes] = (log.size, log.root())
        self._pending: list[bytes] = []
        self._pending_leaves: list[bytes] = []
        self._scheduled = False
        self.failed: BaseException | None = None

    @property
    def size(self) -> int:
        """Entries committed (written or pending)."""
        return self._tip[0]

    def root(self) -> bytes:
        """Root over all committed entries."""
        return self._tip[1]

    def compact_range(self) -> CompactRange:
        """Frontier over all committed entries (computed from the log and the entries not
        yet written when an append left it unknown)."""
        if self._frontier is None:
            self._check()
            base = self.log.compact_range(self._unwritten_from)
            frontier = base.append(self._unwritten_leaves())
            if (frontier.size, frontier.root()) != self._tip:
                self.failed = LogError(
                    f"entries accepted up to size {frontier.size} do not hash to the expected root"
                )
                raise self.failed
            self._frontier = frontier
        return self._frontier

    def append(
        self,
        entries: Sequence[bytes],
        leaves: Sequence[bytes] | None = None,
        expect: tuple[int, bytes] | None = None,
    ) -> tuple[int, bytes]:
        """Accept ``entries`` (durably written by a later write); return (size, root).

        ``leaves``: the entries' leaf hashes if known (precondition: correct); kept for
        the write, so each entry is hashed at most once here. ``expect``: the (size,
        root) the caller verified; returned at once (no hashing on the caller's thread)
        and checked by the write, which fails (``on_error``) if it does not hold.
        """
        self._check()
        if leaves is None:
            leaves = [leaf_hash(e) for e in entries]
        elif len(leaves) != len(entries):
            raise LogError(f"{len(leaves)} leaf hashes given for {len(entries)} entries")
        if expect is not None:
            if expect[0] != self._tip[0] + len(entries):
                raise LogError(
                    f"{len(entries)} entries after {self._tip[0]} cannot make size {expect[0]}"
                )
            self._tip, self._frontier = expect, None
        else:
            frontier = self.compact_range().append(leaves)
            self._tip, self._frontier = (frontier.size, frontier.root()), frontier
        self._pending.extend(entries)
        self._pending_leaves.extend(leaves)
        self._kick_soon()
        return self._tip

    def _check(self) -> None:
        if self.failed is not None:
            raise LogError(f"the Merkle log failed earlier: {self.failed}")

    def _kick_soon(self) -> None:
        if not self._scheduled and self._flight_future is None and self._pending:
            self._scheduled = True
            self._schedule(self._kick)

    def _kick(self) -> None:
        """Start writing what is pending (on the loop)."""
        self._scheduled = False
        if self._flight_future is not None or not self._pending or self.failed is not None:
            return
        if self._executor is None:
            try:
                self.flush()
            except LogError as e:
                self._report(e)
            return
        self._take_pending()
        future = self._executor.submit(
            self._write, self._flight, self._flight_leaves, self._flight_expect
        )
        self._flight_future = future
        future.add_done_callback(lambda f: self._schedule(lambda: self._finished(f)))

    def _write(
        self, entries: list[bytes], leaves: list[bytes], expect: tuple[int, bytes]
    ) -> tuple[int, bytes]:
        """One write of the log (on the writer's thread): the barrier, then the append."""
        if self._before_write is not None:
            try:
                self._before_write()
            except ChainError as e:
                raise LogError(f"cannot write the Merkle log: {e}") from e
        return self.log.append(entries, leaves, expect)

    def _take_pending(self) -> None:
        """Make every pending entry the next write; the log must then match the frontier."""
        self._flight, self._pending = self._pending, []
        self._flight_leaves, self._pending_leaves = self._pending_leaves, []
        self._flight_expect = self._tip

    def _finished(self, future: Future[tuple[int, bytes]]) -> None:
        """The write in flight ended (on the loop)."""
        if future is not self._flight_future:
            return  # already handled by a synchronous flush
        try:
            self._settle(future)
        except LogError as e:
            self._report(e)
            return
        self._kick_soon()

    def _settle(self, future: Future[tuple[int, bytes]]) -> None:
        """Account for the finished write ``future`` (blocks until it has finished)."""
        self._flight_future = None
        try:
            written = future.result()
        except LogError as e:
            self.failed = e
            raise
        except Exception as e:  # an OSError or bug in the worker: the log cannot follow
            self.failed = LogError(f"writing the Merkle log failed: {e!r}")
            raise self.failed from e
        finally:
            self._flight, self._flight_leaves = [], []
        self._check_written(written)

    def _check_written(self, written: tuple[int, bytes]) -> None:
        if written != self._flight_expect:
            self.failed = LogError(
                f"log at size {written[0]} disagrees with the committed chain "
                f"(size {self._flight_expect[0]})"
            )
            raise self.failed
        self._unwritten_from = written[0]

    def _report(self, e: LogError) -> None:
        if self._on_error is None:
            raise e
        self._on_error(e)

    def flush(self) -> None:
        """Write everything accepted so far, now (durable when this returns); waits for a
        write in flight first."""
        self._check()
        if self._flight_future is not None:
            self._settle(self._flight_future)
        if not self._pending:
            return
        self._take_pending()
        try:
            written = self._write(self._flight, self._flight_leaves, self._flight_expect)
        except LogError as e:
            self.failed = e
            raise
        finally:
            self._flight, self._flight_leaves = [], []
        self._check_written(written)

    @property
    def pending(self) -> int:
        """Entries accepted but not yet written."""
        return self.size - self._unwritten_from

    def _unwritten_leaves(self) -> list[bytes]:
        return self._flight_leaves + self._pending_leaves

    def entry(self, index: int) -> bytes:
        """Entry ``index``."""
        if index < self._unwritten_from:
            return self.log.entry(index)
        offset = index - self._unwritten_from
        unwritten = self._flight + self._pending
        if not 0 <= offset < len(unwritten):
            raise LogError(f"entry {index} is outside the log of size {self.size}")
        return unwritten[offset]

    def leaf_index(self, leaf: bytes) -> int | None:
        """Index of the first entry with leaf hash ``leaf`` (no waiting for a write)."""
        # The log answers for what it committed (its readers see only committed appends);
        # anything later is still in the lists, which only this thread empties.
        index = self.log.leaf_index(leaf)
        if index is not None:
            return index
        unwritten = self._unwritten_leaves()
        try:
            return self._unwritten_from + unwritten.index(leaf)
        except ValueError:
            return None

    def _written(self, size: int) -> None:
        if size > self._unwritten_from:
            self.flush()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of ``index`` in the tree of ``size``."""
        self._written(size)
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes."""
        self._written(new_size)
        return self.log.consistency_proof(old_size, new_size)

    def close(self) -> None:
        """Finish writing what is accepted (if the log still works), then close the log."""
        try:
            if self.failed is None:
                self.flush()
        finally:
            self.log.close()
