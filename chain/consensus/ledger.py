"""The ledger interface a validator applies committed blocks to, and checkpoint gathering.

Real nodes use :class:`chain.log.MerkleLog` (persisted, O(log n) proofs); the simulation
and unit tests use :class:`MemoryLedger`. :class:`CheckpointCollector` gathers the
validators' signed-note signatures over the checkpoint of each committed block and yields
the note once 2f+1 distinct validators signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chain.checkpoint import Checkpoint, assemble_checkpoint, verify_checkpoint
from chain.consensus.committee import Committee
from chain.consensus.messages import CheckpointVote
from chain.merkle import CompactRange, consistency_proof, inclusion_proof, leaf_hash


class Ledger(Protocol):
    """An append-only RFC 9162 log (``chain.log.MerkleLog`` satisfies it)."""

    @property
    def size(self) -> int:
        """Number of entries."""
        ...

    def root(self) -> bytes:
        """The current root hash."""
        ...

    def append(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """Append durably; return (new size, new root)."""
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

    def append(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """Append ``entries``; return (size, root)."""
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

    def add(self, vote: CheckpointVote) -> str | None:
        """Add a verified vote; return the committed checkpoint note when it completes.

        Precondition: ``vote.verify(committee)`` passed. A Byzantine validator signing a
        different root for the same size only fills its own bucket, which never reaches
        the quorum unless 2f+1 signed that root.
        """
        if vote.tree_size in self._done:
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
        verify_checkpoint(note, self._committee.trust)  # belt and braces before storing
        self._done.add(vote.tree_size)
        for k in [k for k in self._pending if k[0] == vote.tree_size]:
            del self._pending[k]
        return note
