"""The client operations of a node, over its consensus :class:`Core` (or several, in the
embedded mode): submit entries, wait for commits, checkpoints, proofs, blocks, status.

The core is synchronous and owns the event loop's thread; this service runs on the same
loop. A commit wakes the waiters of the entries it holds; stored checkpoints wake
checkpoint waiters through one :class:`Notifier`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from chain.checkpoint import parse_checkpoint
from chain.consensus.blocks import Block
from chain.consensus.core import Core
from chain.consensus.ledger import Ledger
from chain.consensus.mempool import Mempool
from chain.errors import ConsensusError, LogError, MempoolFullError
from chain.merkle import leaf_hash
from chain.node.results import (
    BatchTooLargeError,
    CommitInfo,
    ConsistencyProof,
    EntryError,
    InclusionProof,
    NotFoundError,
    SubmitResult,
)
from chain.note import parse_note


class ServiceStore(Protocol):
    """What the service reads from the consensus store besides the BlockStore protocol."""

    def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The committed checkpoint of ``tree_size`` (None: the largest)."""
        ...

    def checkpoint_at_or_above(self, tree_size: int) -> str | None:
        """The smallest committed checkpoint of at least ``tree_size``."""
        ...

    def committed_block(self, height: int) -> Block | None:
        """The committed block at ``height``."""
        ...

    def committed_position(self, index: int) -> tuple[int, int] | None:
        """(height, tree size after it) of the committed block holding leaf ``index``."""
        ...


class Notifier:
    """Wakes every waiter when something changed; waiters re-check their condition."""

    def __init__(self) -> None:
        """No waiters yet."""
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake all current waiters."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Wait for the next change, at most ``timeout`` seconds."""
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


def checkpoint_size(note: str) -> int:
    """The tree size of a checkpoint note."""
    return parse_checkpoint(parse_note(note).text).size


class CommittedIndex:
    """Which of many leaf hashes are already in the log, at about a microsecond each.

    A Bloom filter over the leaf hashes of the log (two 27-bit slices: the top bits of each
    hash's bytes 0-3 and 4-7) answers "certainly not committed" for almost every fresh
    entry; the rare hits (about 2% false positives at 10 million entries) are confirmed
    with the log's exact :meth:`leaf_index`. The filter is loaded at start from the MerkleLog's
    leaf-hash prefix index (``docs/merkle.md``: ``entries.prefix``, the first 8 bytes
    as a signed big-endian integer) and extended by :meth:`add` on every commit. Without
    the database it asks the log once per leaf.
    """

    BITS = 27  # bits per slice: the filter is 2**27 bits (16 MiB)
    _PAIRS = struct.Struct(">II24x")  # the two slices: top 27 bits of bytes 0-3 and 4-7

    def __init__(self, ledger: Ledger, db_path: Path | None) -> None:
        """Index over ``ledger``; ``db_path`` is its ``log.sqlite`` (or None)."""
        self._ledger = ledger
        self._bits: bytearray | None = None
        if db_path is not None and db_path.exists():
            bits = self._bits = bytearray(1 << (self.BITS - 3))
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                for (prefix,) in db.execute("SELECT prefix FROM entries"):
                    u = int(prefix) & 0xFFFF_FFFF_FFFF_FFFF
                    a, b = u >> 37, (u & 0xFFFF_FFFF) >> 5
                    bits[a >> 3] |= 1 << (a & 7)
                    bits[b >> 3] |= 1 << (b & 7)
            finally:
                db.close()

    def add(self, leaves: Sequence[bytes]) -> None:
        """Record newly committed leaf hashes (32 bytes each; call on every commit)."""
        bits = self._bits
        if bits is None or not leaves:
            return
        for x, y in self._PAIRS.iter_unpack(b"".join(leaves)):
            a, b = x >> 5, y >> 5
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)

    def committed(self, leaves: Sequence[bytes]) -> set[bytes]:
        """The subset of ``leaves`` (32-byte leaf hashes) that the log holds."""
        bits = self._bits
        if bits is None:
            return {h for h in leaves if self._ledger.leaf_index(h) is not None}
        found: set[bytes] = set()
        if not leaves:
            return found
        for h, (x, y) in zip(leaves, self._PAIRS.iter_unpack(b"".join(leaves)), strict=True):
            a, b = x >> 5, y >> 5
            if (
                bits[a >> 3] >> (a & 7) & 1
                and bits[b >> 3] >> (b & 7) & 1
                and self._ledger.leaf_index(h) is not None
            ):
                found.add(h)
        return found

    def close(self) -> None:
        """Release the filter."""
        self._bits = None


class LedgerService:
    """Client operations of one node (``cores[0]`` answers reads; submissions go to every
    core's mempool, so in the embedded mode whichever validator leads proposes them)."""

    def __init__(
        self,
        cores: Sequence[Core],
        store: ServiceStore,
        *,
        max_batch_entries: int = 10_000,
        peers_up: Callable[[], list[str]] | None = None,
        role: str | None = None,
        committed_db: Path | None = None,
        replicate: Callable[[Sequence[bytes]], Awaitable[int]] | None = None,
        replicas_needed: int = 0,
    ) -> None:
        """Serve ``cores`` (precondition: all replicas of one chain; ``store`` is the
        consensus store of ``cores[0]``). Call :meth:`notify` whenever a checkpoint is stored.

        ``committed_db``: the ``log.sqlite`` of ``cores[0]``'s MerkleLog, read for fast
        batched "already committed?" checks (None: one lookup per entry). ``replicate``
        hands submitted entries to the other validators and returns how many took them;
        a submission is acknowledged only once ``replicas_needed`` of them did (f+1 in a
        node: then at least one honest validator other than this one holds every
        acknowledged entry, so the entry survives this node's crash)."""
        if not cores:
            raise ValueError("a service needs at least one core")
        self.cores = list(cores)
        self.primary = self.cores[0]
        self.store = store
        self.max_batch_entries = max_batch_entries
        self._peers_up = peers_up
        self.role = role or ("validator" if self.primary.is_validator else "observer")
        self.notifier = Notifier()
        # Waiters for one entry each, woken by the commit that holds it: a commit costs a
        # dict lookup per entry instead of a database lookup per waiter.
        self._waiters: dict[bytes, list[asyncio.Future[CommitInfo]]] = {}
        self._replicate = replicate
        self._replicas_needed = replicas_needed
        self._committed = CommittedIndex(self.primary.ledger, committed_db)
        self.primary.commit_listeners.append(self._on_commit)
        self.started_at = time.time()

    def _on_commit(self, block: Block) -> None:
        leaves = block.leaf_hashes
        self._committed.add(leaves)
        waiters = self._waiters
        if not waiters:
            return
        first = block.tree_size - len(leaves)
        for i, leaf in enumerate(leaves):
            futures = waiters.pop(leaf, None)
            if futures is None:
                continue
            # Registered after a lookup that found nothing, so this is the leaf's first
            # occurrence in the log: the index lookup would answer the same.
            info = CommitInfo(leaf, first + i, block.height, block.tree_size)
            for future in futures:
                if not future.done():
                    future.set_result(info)

    def close(self) -> None:
        """Release the committed index."""
        self._committed.close()

    def notify(self) -> None:
        """Something changed (a checkpoint was stored): wake waiters."""
        self.notifier.notify()

    @property
    def chain_id(self) -> str:
        """The chain id (checkpoint origin)."""
        return self.primary.committee.chain_id

    # -- submit and wait ---------------------------------------------------------------

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Admit ``entries`` to the mempool(s) and replicate them; entries already
        committed are skipped.

        Raises :class:`BatchTooLargeError` above the per-request count, :class:`EntryError`
        for an empty or oversized entry, :class:`MempoolFullError` when no mempool can
        take the batch or too few validators took the copy (busy: retry later).
        Re-submitting is idempotent while pending (and replicates again).
        """
        if not entries:
            raise EntryError("a submission needs at least one entry")
        if len(entries) > self.max_batch_entries:
            raise BatchTooLargeError(
                f"{len(entries)} entries in one request; at most {self.max_batch_entries}"
            )
        pools = [c.mempool for c in self.cores if c.mempool is not None and c.is_validator]
        if not pools:
            raise EntryError("this node is an observer; submit to a validator")
        limit = pools[0].config.max_entry_bytes
        for i, entry in enumerate(entries):
            if not 0 < len(entry) <= limit:
                raise EntryError(f"entry {i} has {len(entry)} bytes; allowed 1..{limit}")
        hashes, fresh = self._admit(pools, entries, strict=True)
        if fresh and self._replicate is not None and self._replicas_needed > 0:
            acked = await self._replicate(fresh)
            if acked < self._replicas_needed:
                raise MempoolFullError(
                    f"{acked} of the {self._replicas_needed} other validators needed took a "
                    "copy of the entries; retry later"
                )
        return SubmitResult(tuple(hashes), len(fresh), len(entries) - len(fresh))

    def _admit(
        self, pools: list[Mempool], entries: Sequence[bytes], *, strict: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """Add to the mempools; return (leaf hashes of all, the entries not yet committed).

        The mempool hashes each entry anyway: add first, then take back what the log
        already holds (nothing runs in between), so each entry is hashed once.
        ``strict``: raise MempoolFullError when no pool took the batch.
        """
        hashes: list[bytes] | None = None
        busy: MempoolFullError | None = None
        for pool in pools:
            if len(pool) + len(entries) > pool.config.max_entries:
                # Refuse before hashing: under saturation most submissions are refused,
                # and the mempool would hash the whole batch before finding it full.
                busy = MempoolFullError(
                    f"mempool holds {len(pool)} of {pool.config.max_entries} entries; retry later"
                )
                continue
            try:
                leaves = pool.add(entries)
            except MempoolFullError as e:
                busy = e
                continue
            except ConsensusError as e:
                raise EntryError(str(e)) from None
            hashes = hashes or leaves
        if hashes is None:
            if strict and busy is not None:
                raise busy
            return [], []
        committed = self._committed.committed(hashes)
        if committed:
            for pool in pools:
                pool.remove(committed)
        fresh = [e for e, h in zip(entries, hashes, strict=True) if h not in committed]
        return hashes, fresh

    def accept_replica(self, entries: Sequence[bytes]) -> int:
        """Admit entries another validator replicated to this one; return how many are
        not yet committed. Raises :class:`MempoolFullError` (busy) and
        :class:`EntryError` (invalid entry, or this node is an observer), so the sender
        counts only validators that really hold them."""
        pools = [c.mempool for c in self.cores if c.mempool is not None and c.is_validator]
        if not pools:
            raise EntryError("this node is an observer; it holds no mempool")
        if not entries:
            return 0
        return len(self._admit(pools, entries, strict=True)[1])

    def lookup(self, entry_hash_: bytes) -> CommitInfo | None:
        """Where the entry with this hash was committed, or None if not (yet)."""
        index = self.primary.ledger.leaf_index(entry_hash_)
        if index is None:
            return None
        position = self.store.committed_position(index)
        if position is None:
            return None  # the ledger is ahead of the committed table only inside a commit
        height, tree_size = position
        return CommitInfo(entry_hash_, index, height, tree_size)

    async def wait_committed(self, entry_hash_: bytes, timeout: float) -> CommitInfo | None:
        """Wait up to ``timeout`` seconds for the entry to be committed; None on timeout."""
        info = self.lookup(entry_hash_)
        if info is not None or timeout <= 0:
            return info
        future: asyncio.Future[CommitInfo] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(entry_hash_, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            futures = self._waiters.get(entry_hash_)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiters[entry_hash_]

    # -- checkpoints and proofs -----------------------------------------------------------

    def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint (a signed note with >= 2f+1 signatures)."""
        return self.store.checkpoint(None)

    def checkpoint(self, tree_size: int) -> str | None:
        """The committed checkpoint of exactly ``tree_size``."""
        return self.store.checkpoint(tree_size)

    async def wait_checkpoint(self, at_least: int, timeout: float) -> str | None:
        """The smallest committed checkpoint of size >= ``at_least``, waiting up to
        ``timeout`` seconds for one to be stored."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            note = self.store.checkpoint_at_or_above(at_least)
            remaining = deadline - time.monotonic()
            if note is not None or remaining <= 0:
                return note
            await self.notifier.wait(remaining)

    def inclusion_proof(
        self, *, tree_size: int, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof of a leaf (by index or entry hash) in the tree of ``tree_size``.

        Raises :class:`NotFoundError` for an unknown entry or a size beyond the log,
        :class:`EntryError` for inconsistent arguments.
        """
        ledger = self.primary.ledger
        if (leaf_index is None) == (entry_hash is None):
            raise EntryError("give exactly one of leaf_index and entry_hash")
        if entry_hash is not None:
            leaf_index = ledger.leaf_index(entry_hash)
            if leaf_index is None:
                raise NotFoundError(f"entry {entry_hash.hex()} is not in the log")
        assert leaf_index is not None
        if not 0 < tree_size <= ledger.size:
            raise NotFoundError(f"tree size {tree_size} is outside the log of size {ledger.size}")
        if not 0 <= leaf_index < tree_size:
            raise NotFoundError(f"leaf {leaf_index} is outside the tree of size {tree_size}")
        try:
            hashes = ledger.inclusion_proof(leaf_index, tree_size)
            leaf = leaf_hash(ledger.entry(leaf_index))
        except (LogError, IndexError) as e:
            raise NotFoundError(str(e)) from None
        return InclusionProof(leaf_index, tree_size, leaf, tuple(hashes))

    def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof from ``old_size`` to ``new_size`` (0 < old <= new <= size)."""
        ledger = self.primary.ledger
        if not 0 < old_size <= new_size:
            raise EntryError(f"need 0 < from ({old_size}) <= to ({new_size})")
        if new_size > ledger.size:
            raise NotFoundError(f"tree size {new_size} is beyond the log of size {ledger.size}")
        try:
            hashes = ledger.consistency_proof(old_size, new_size)
        except LogError as e:
            raise NotFoundError(str(e)) from None
        return ConsistencyProof(old_size, new_size, tuple(hashes))

    def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` as JSON; raises :class:`NotFoundError`."""
        block = self.store.committed_block(height) if height >= 1 else None
        if block is None:
            raise NotFoundError(f"no committed block at height {height}")
        return block_json(block)

    def status(self) -> dict[str, Any]:
        """Height, view, tree size, latest checkpoint, peers seen up, mempool size."""
        core = self.primary
        latest = self.latest_checkpoint()
        pools = [c.mempool for c in self.cores if c.mempool is not None]
        return {
            "name": core.name,
            "role": self.role,
            "chain_id": self.chain_id,
            "height": core.head.height,
            "view": core.view,
            "tree_size": core.ledger.size,
            "high_qc_view": core.high_qc.view,
            "mempool_entries": max((len(p) for p in pools), default=0),
            "latest_checkpoint_size": checkpoint_size(latest) if latest else None,
            "latest_checkpoint": latest,
            "peers_up": self._peers_up() if self._peers_up is not None else [],
            "rejected_messages": core.errors,
            "uptime_s": round(time.time() - self.started_at, 3),
        }


def block_json(block: Block) -> dict[str, Any]:
    """A committed block as JSON: header fields, QC signers and entries in base64."""
    return {
        "height": block.height,
        "view": block.view,
        "hash": block.hash.hex(),
        "parent_hash": block.parent_hash.hex(),
        "proposer": block.proposer,
        "timestamp_ms": block.timestamp_ms,
        "payload_digest": block.payload_digest.hex(),
        "tree_size": block.tree_size,
        "root": base64.b64encode(block.root).decode("ascii"),
        "qc": {"view": block.qc.view, "signers": [s for s, _ in block.qc.signatures]},
        "tc_view": block.tc.view if block.tc is not None else None,
        "entries": [base64.b64encode(e).decode("ascii") for e in block.entries],
    }
