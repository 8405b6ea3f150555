"""What the service needs of the ledger: embedded validators or validators over HTTP.

``chain.node.inprocess.EmbeddedChain`` and the HTTP ``LedgerClient`` both provide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CommitInfo(Protocol):
    @property
    def leaf_index(self) -> int: ...

    @property
    def block_height(self) -> int: ...

    @property
    def tree_size(self) -> int: ...


class InclusionProof(Protocol):
    @property
    def hashes(self) -> tuple[bytes, ...]: ...


class ConsistencyProof(Protocol):
    @property
    def hashes(self) -> tuple[bytes, ...]: ...


class Ledger(Protocol):
    """The ledger operations of the service."""

    async def submit(self, entries: Sequence[bytes]) -> object:
        """Submit entries; idempotent. Raises when the ledger is busy or unreachable."""
        ...

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Wait until the entry with this leaf hash is committed; raise on timeout."""
        ...

    async def latest_checkpoint(self) -> str | None:
        """The newest committed checkpoint note, None before the first."""
        ...

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size``; raises if there is none."""
        ...

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof of a leaf in the tree of ``tree_size``."""
        ...

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two tree sizes."""
        ...
