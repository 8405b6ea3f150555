"""The block tree a replica holds above its committed head, and catch-up bookkeeping.

Blocks enter the tree only once their parent is in it and they were checked against it
(:meth:`Block.verify_extends`), so every block in the tree descends from the committed
head or from a block that was once a candidate. Blocks whose parent is missing wait in a
bounded buffer while the core fetches the parent (``BlockRequest``): the response is
accepted only as a hash-linked chain down from a requested hash, every block verified
with its QC, and every root recomputed from the parent's frontier before it is applied.
"""

from __future__ import annotations

from chain.consensus.blocks import Block
from chain.merkle import CompactRange


class BlockTree:
    """Blocks from the committed head upward, with the log frontier after each."""

    def __init__(self, head: Block, head_frontier: CompactRange) -> None:
        """A tree holding only the committed ``head`` (whose log frontier is given)."""
        self._head = head
        self._blocks: dict[bytes, Block] = {head.hash: head}
        self._frontiers: dict[bytes, CompactRange] = {head.hash: head_frontier}
        self._waiting: dict[bytes, list[tuple[Block, bool]]] = {}
        self._waiting_count = 0

    @property
    def head(self) -> Block:
        """The highest committed block."""
        return self._head

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, block_hash: bytes) -> Block | None:
        """The block with ``block_hash`` if it is in the tree."""
        return self._blocks.get(block_hash)

    def frontier(self, block: Block) -> CompactRange:
        """The log frontier after ``block`` (precondition: ``block`` is in the tree)."""
        return self._frontiers[block.hash]

    def insert(self, block: Block, frontier: CompactRange) -> None:
        """Add a block checked against its parent, with the frontier after it."""
        self._blocks[block.hash] = block
        self._frontiers[block.hash] = frontier

    def wait(self, block: Block, proposal: bool, limit: int) -> bool:
        """Park ``block`` until its parent arrives; False if the buffer is full."""
        siblings = self._waiting.setdefault(block.parent_hash, [])
        if any(b.hash == block.hash for b, _ in siblings):
            return True
        if self._waiting_count >= limit:
            return False
        siblings.append((block, proposal))
        self._waiting_count += 1
        return True

    def release(self, parent_hash: bytes) -> list[tuple[Block, bool]]:
        """The blocks that were waiting for ``parent_hash`` (removed from the buffer)."""
        children = self._waiting.pop(parent_hash, [])
        self._waiting_count -= len(children)
        return children

    def has_pending_entries(self) -> bool:
        """Whether any block above the committed head (on any branch) holds entries."""
        height = self._head.height
        return any(b.entries for b in self._blocks.values() if b.height > height)

    def pending_leaves(self, tip_hash: bytes) -> set[bytes]:
        """Leaf hashes of the uncommitted blocks from ``tip_hash`` down to the head."""
        leaves: set[bytes] = set()
        block = self._blocks.get(tip_hash)
        while block is not None and block.height > self._head.height:
            leaves.update(block.leaf_hashes)
            block = self._blocks.get(block.parent_hash)
        return leaves

    def path_from_head(self, target: Block) -> list[Block] | None:
        """The blocks after the head up to ``target``, oldest first; None if ``target``
        does not descend from the head."""
        path: list[Block] = []
        block: Block | None = target
        while block is not None and block.height > self._head.height:
            path.append(block)
            block = self._blocks.get(block.parent_hash)
        if block is None or block.hash != self._head.hash:
            return None
        path.reverse()
        return path

    def set_head(self, block: Block) -> None:
        """Make ``block`` (a child of the head, in the tree) the committed head."""
        self._head = block

    def prune(self) -> None:
        """Forget blocks below the head and waiting blocks that can no longer attach."""
        height = self._head.height
        for h in [h for h, b in self._blocks.items() if b.height < height]:
            del self._blocks[h]
            del self._frontiers[h]
        for parent in list(self._waiting):
            kept = [(b, p) for b, p in self._waiting[parent] if b.height > height]
            self._waiting_count -= len(self._waiting[parent]) - len(kept)
            if kept:
                self._waiting[parent] = kept
            else:
                del self._waiting[parent]
