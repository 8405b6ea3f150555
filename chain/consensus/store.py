"""Storage interfaces of a validator and their in-memory implementation.

:class:`SafetyStore` (in :mod:`chain.consensus.safety`) holds what prevents equivocation;
:class:`BlockStore` holds blocks, the committed chain and committed checkpoints. The SQLite
implementation is :mod:`chain.consensus.sqlite_store`. :class:`MemoryStore` implements
both (and the lookups of the node's client service) for tests and the simulation: the
object plays the node's disk, so it survives a simulated crash while the node's in-memory
state does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from chain.consensus.blocks import Block
from chain.consensus.safety import SafetyState


class BlockStore(Protocol):
    """Durable blocks and checkpoints."""

    def put_block(self, block: Block) -> None:
        """Store a validated block (idempotent)."""
        ...

    def get_block(self, block_hash: bytes) -> Block | None:
        """The block with ``block_hash``, or None."""
        ...

    def set_committed(self, block: Block) -> None:
        """Record ``block`` (already stored) as committed at its height: the new head."""
        ...

    def committed_head(self) -> Block | None:
        """The highest committed block, or None before the first commit."""
        ...

    def committed_block(self, height: int) -> Block | None:
        """The committed block at ``height``, or None."""
        ...

    def blocks_above(self, height: int) -> list[Block]:
        """Stored blocks higher than ``height`` (committed or not), by height."""
        ...

    def put_checkpoint(self, tree_size: int, note: str) -> None:
        """Store a committed checkpoint note (>= 2f+1 signatures) for ``tree_size``."""
        ...

    def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The committed checkpoint for ``tree_size`` (None: the largest), or None."""
        ...


class MemoryStore:
    """A :class:`SafetyStore` and :class:`BlockStore` in memory; the simulation's "disk".

    ``after_save`` (if set) runs after the safety state is stored; the simulation uses it
    to crash a node between persisting a decision and sending the message.
    """

    def __init__(self) -> None:
        """An empty disk."""
        self._safety: SafetyState | None = None
        self._blocks: dict[bytes, Block] = {}
        self._committed: dict[int, bytes] = {}
        self._head = -1
        self._checkpoints: dict[int, str] = {}
        self.after_save: Callable[[], None] | None = None
        self.saves = 0

    def load_safety(self) -> SafetyState | None:
        """The stored safety state."""
        return self._safety

    def save_safety(self, state: SafetyState) -> None:
        """Store ``state`` (atomic in memory), then run ``after_save``."""
        self._safety = state
        self.saves += 1
        if self.after_save is not None:
            self.after_save()

    def put_block(self, block: Block) -> None:
        """Store ``block``."""
        self._blocks[block.hash] = block

    def get_block(self, block_hash: bytes) -> Block | None:
        """The block with ``block_hash``."""
        return self._blocks.get(block_hash)

    def set_committed(self, block: Block) -> None:
        """Mark ``block`` committed at its height."""
        self._blocks[block.hash] = block
        self._committed[block.height] = block.hash
        self._head = max(self._head, block.height)

    def committed_head(self) -> Block | None:
        """The highest committed block."""
        return self.committed_block(self._head) if self._head >= 0 else None

    def committed_block(self, height: int) -> Block | None:
        """The committed block at ``height``."""
        h = self._committed.get(height)
        return self._blocks.get(h) if h is not None else None

    def blocks_above(self, height: int) -> list[Block]:
        """Stored blocks above ``height``, by height."""
        return sorted((b for b in self._blocks.values() if b.height > height), key=_height)

    def put_checkpoint(self, tree_size: int, note: str) -> None:
        """Store a committed checkpoint."""
        self._checkpoints[tree_size] = note

    def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The checkpoint of ``tree_size`` or the largest."""
        if tree_size is None:
            return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None
        return self._checkpoints.get(tree_size)

    def checkpoint_at_or_above(self, tree_size: int) -> str | None:
        """The smallest committed checkpoint of at least ``tree_size``."""
        sizes = [s for s in self._checkpoints if s >= tree_size]
        return self._checkpoints[min(sizes)] if sizes else None

    def committed_position(self, index: int) -> tuple[int, int] | None:
        """(height, tree size after it) of the committed block holding leaf ``index``."""
        for height in sorted(self._committed):
            block = self.committed_block(height)
            if block is not None and block.tree_size > index:
                return height, block.tree_size
        return None

    def checkpoints(self) -> dict[int, str]:
        """All stored checkpoints by tree size (for the simulation's checks)."""
        return dict(self._checkpoints)


def _height(block: Block) -> int:
    return block.height
