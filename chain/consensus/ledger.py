"""Applying committed blocks to the log, and the checkpoints signed over it.

Real nodes use :class:`chain.log.MerkleLog` (persisted, O(log n) proofs) as the
:class:`Ledger`; the simulation and unit tests use :class:`MemoryLedger`.
:func:`apply_block` and :func:`recover` keep the block store's committed chain and the log
in step across crashes. :class:`Checkpointer` signs the checkpoint of each committed block
and turns 2f+1 validators' signatures into a stored committed checkpoint note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chain.checkpoint import (
    Checkpoint,
    assemble_checkpoint,
    checkpoint_signature,
    parse_checkpoint,
    verify_checkpoint,
)
from chain.consensus.blocks import GENESIS, Block
from chain.consensus.committee import Committee
from chain.consensus.errors import SafetyViolationError, ensure
from chain.consensus.messages import CheckpointVote
from chain.consensus.store import BlockStore
from chain.keys import Signer
from chain.merkle import CompactRange, consistency_proof, inclusion_proof, leaf_hash
from chain.note import parse_note


class Ledger(Protocol):
    """An append-only RFC 9162 log (``chain.log.MerkleLog`` satisfies it)."""

    @property
    def size(self) -> int:
        """Number of entries."""
        ...

    def root(self) -> bytes:
        """The current root hash."""
        ...

    def append(
        self,
        entries: Sequence[bytes],
        leaves: Sequence[bytes] | None = None,
        expect: tuple[int, bytes] | None = None,
    ) -> tuple[int, bytes]:
        """Append durably; return (new size, new root).

        ``leaves``, if given, are the entries' leaf hashes (precondition: correct), so
        they are not hashed again. ``expect`` is the (size, root) the caller already
        verified the append leads to: an implementation that writes later may return it
        at once, provided it checks it before the write counts as done (and fails then).
        """
        ...

    def entry(self, index: int) -> bytes:
        """Entry ``index``."""
        ...

    def leaf_index(self, leaf: bytes) -> int | None:
        """Index of the first entry with leaf hash ``leaf``, or None."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of ``index`` in the tree of ``size``."""
        ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes."""
        ...

    def compact_range(self) -> CompactRange:
        """The frontier of the whole log."""
        ...


class MemoryLedger:
    """A :class:`Ledger` in memory (O(n) proofs): for tests and the simulation."""

    def __init__(self) -> None:
        """An empty log."""
        self._entries: list[bytes] = []
        self._leaves: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._frontier = CompactRange.empty()

    @property
    def size(self) -> int:
        """Number of entries."""
        return len(self._entries)

    def root(self) -> bytes:
        """The current root."""
        return self._frontier.root()

    def append(
        self,
        entries: Sequence[bytes],
        leaves: Sequence[bytes] | None = None,
        expect: tuple[int, bytes] | None = None,
    ) -> tuple[int, bytes]:
        """Append ``entries`` (with their leaf hashes, if known); return (size, root).
        ``expect`` is ignored: the result is always computed."""
        if leaves is None:
            leaves = [leaf_hash(e) for e in entries]
        for leaf in leaves:
            self._index.setdefault(leaf, len(self._leaves))
            self._leaves.append(leaf)
        self._entries.extend(entries)
        self._frontier = self._frontier.append(leaves)
        return self.size, self.root()

    def entry(self, index: int) -> bytes:
        """Entry ``index`` (IndexError if out of range)."""
        return self._entries[index]

    def leaf_index(self, leaf: bytes) -> int | None:
        """Index of the first entry with leaf hash ``leaf``."""
        return self._index.get(leaf)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof of ``index`` in the first ``size`` entries."""
        return inclusion_proof(index, self._leaves[:size])

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size``."""
        return consistency_proof(old_size, self._leaves[:new_size])

    def compact_range(self) -> CompactRange:
        """The frontier."""
        return self._frontier


class CheckpointCollector:
    """Gathers checkpoint signatures per (tree size, root) until a quorum signed."""

    def __init__(self, committee: Committee, max_pending: int = 1024) -> None:
        """Collect for ``committee``; keep at most ``max_pending`` open checkpoints."""
        self._committee = committee
        self._max_pending = max_pending
        self._pending: dict[tuple[int, bytes], dict[int, str]] = {}
        self._done: set[int] = set()

    def done(self, tree_size: int) -> bool:
        """Whether the checkpoint of ``tree_size`` was completed here."""
        return tree_size in self._done

    def add(self, vote: CheckpointVote) -> str | None:
        """Add a verified vote; return the committed checkpoint note when it completes.

        Precondition: ``vote.verify(committee)`` passed. A Byzantine validator signing a
        different root for the same size only fills its own bucket, which never reaches
        the quorum unless 2f+1 signed that root.
        """
        if self.done(vote.tree_size):
            return None
        key = (vote.tree_size, vote.root)
        if key not in self._pending and len(self._pending) >= self._max_pending:
            self._pending.pop(min(self._pending))
        bucket = self._pending.setdefault(key, {})
        bucket[vote.voter] = vote.note_signature(self._committee).line
        if len(bucket) < self._committee.quorum:
            return None
        cp = Checkpoint(origin=self._committee.chain_id, size=vote.tree_size, root=vote.root)
        note = assemble_checkpoint(cp, [bucket[i] for i in sorted(bucket)])
        # Belt and braces before storing (through the committee's verifier: in one process
        # the votes' signatures were just verified, so these are cache hits).
        verify_checkpoint(note, self._committee.trust, verify=self._committee.verifier)
        self._done.add(vote.tree_size)
        for k in [k for k in self._pending if k[0] == vote.tree_size]:
            del self._pending[k]
        return note


def apply_block(store: BlockStore, ledger: Ledger, block: Block) -> None:
    """Commit ``block`` (a child of the committed head): mark it, then append its entries.

    The mark comes first, so a crash in between leaves the log behind, never ahead, and
    :func:`recover` replays it. Raises :class:`SafetyViolationError` if the log's size or
    root afterwards differ from the block's (the log and the chain disagree).
    """
    store.set_committed(block)
    if block.entries:
        # The block was checked against its parent's frontier (Block.verify_extends), so
        # its (size, root) is what the append must give; a deferring ledger checks it
        # when it writes.
        expect = (block.tree_size, block.root)
        size, root = ledger.append(block.entries, block.leaf_hashes, expect)
    else:
        size, root = ledger.size, ledger.root()
    ensure(
        size == block.tree_size and root == block.root,
        SafetyViolationError,
        f"ledger after block {block.height} does not match the block's root",
    )


def recover(store: BlockStore, ledger: Ledger) -> Block:
    """The committed head, after replaying into ``ledger`` committed blocks it lacks.

    Raises :class:`SafetyViolationError` if the log cannot be brought to the head's size
    and root (it holds entries the chain did not commit, or a committed block is missing).
    """
    head = store.committed_head() or GENESIS
    if ledger.size < head.tree_size:
        for height in range(1, head.height + 1):
            block = store.committed_block(height)
            if block is None:
                raise SafetyViolationError(f"committed block {height} missing from store")
            if block.tree_size > ledger.size:
                ensure(
                    block.tree_size - len(block.entries) == ledger.size,
                    SafetyViolationError,
                    f"ledger size {ledger.size} cannot be completed by block {height}",
                )
                ledger.append(block.entries, block.leaf_hashes)
    ensure(
        ledger.size == head.tree_size and ledger.root() == head.root,
        SafetyViolationError,
        f"ledger (size {ledger.size}) does not match committed block {head.height}",
    )
    return head


def checkpoint_size(note: str) -> int:
    """The tree size of a stored (well-formed) checkpoint note."""
    return parse_checkpoint(parse_note(note).text).size


class Checkpointer:
    """Signs checkpoints of committed blocks and stores those 2f+1 validators signed."""

    def __init__(self, committee: Committee, signer: Signer | None, store: BlockStore) -> None:
        """``signer`` None (an observer) only collects."""
        self._committee = committee
        self._signer = signer
        self._index = committee.index_of(signer.name) if signer is not None else None
        self._store = store
        self._collector = CheckpointCollector(committee)
        self._last_signed_size = 0
        # Checkpoints above this size can only have been stored through this object (so
        # the collector knows them): the store is asked only about sizes up to it.
        latest = store.checkpoint(None)
        self._stored_before = checkpoint_size(latest) if latest is not None else -1

    def sign(self, block: Block) -> CheckpointVote | None:
        """This validator's vote for the checkpoint after ``block``, if the log grew."""
        if self._signer is None or self._index is None:
            return None
        if block.tree_size <= self._last_signed_size:
            return None
        self._last_signed_size = block.tree_size
        cp = Checkpoint(origin=self._committee.chain_id, size=block.tree_size, root=block.root)
        sig = checkpoint_signature(cp, self._signer).signature
        return CheckpointVote(block.height, block.tree_size, block.root, self._index, sig)

    def receive(self, vote: CheckpointVote) -> str | None:
        """Verify and collect ``vote``; store and return the note once it is committed."""
        # A completed checkpoint needs no more votes: skip their verification (the
        # in-memory check first; the store knows those completed before a restart).
        if self._collector.done(vote.tree_size):
            return None
        maybe_stored = vote.tree_size <= self._stored_before
        if maybe_stored and self._store.checkpoint(vote.tree_size) is not None:
            return None
        vote.verify(self._committee)
        note = self._collector.add(vote)
        if note is not None:
            self._store.put_checkpoint(vote.tree_size, note)
        return note
