"""What the client operations return; shared by the service, the HTTP API and clients.

An *entry hash* is the entry's RFC 9162 leaf hash, ``SHA-256(0x00 || entry)``: the value
an inclusion proof proves, so a client can compute it before submitting.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

# The errors of the node's operations (defined in chain.errors, re-exported here).
from chain.errors import BatchTooLargeError as BatchTooLargeError
from chain.errors import CommitTimeoutError as CommitTimeoutError
from chain.errors import EntryError as EntryError
from chain.errors import NotFoundError as NotFoundError
from chain.merkle import leaf_hash


def entry_hash(entry: bytes) -> bytes:
    """The entry hash (leaf hash) of ``entry``."""
    return leaf_hash(entry)


@dataclass(frozen=True)
class SubmitResult:
    """Outcome of a submission: one entry hash per submitted entry, in order."""

    entry_hashes: tuple[bytes, ...]
    accepted: int
    already_committed: int

    def to_json(self) -> dict[str, Any]:
        """JSON form (hashes in hex)."""
        return {
            "entry_hashes": [h.hex() for h in self.entry_hashes],
            "accepted": self.accepted,
            "already_committed": self.already_committed,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SubmitResult:
        """Parse :meth:`to_json` output."""
        return cls(
            tuple(bytes.fromhex(h) for h in d["entry_hashes"]),
            int(d["accepted"]),
            int(d["already_committed"]),
        )


@dataclass(frozen=True)
class CommitInfo:
    """Where a committed entry is: its leaf index, the block that committed it, and the
    tree size after that block (a checkpoint of that size covers the entry)."""

    entry_hash: bytes
    leaf_index: int
    block_height: int
    tree_size: int

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "entry_hash": self.entry_hash.hex(),
            "committed": True,
            "leaf_index": self.leaf_index,
            "block_height": self.block_height,
            "tree_size": self.tree_size,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CommitInfo:
        """Parse :meth:`to_json` output."""
        return cls(
            bytes.fromhex(d["entry_hash"]),
            int(d["leaf_index"]),
            int(d["block_height"]),
            int(d["tree_size"]),
        )


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 9162 inclusion proof of leaf ``leaf_index`` (hash ``leaf_hash``) in the tree
    of ``tree_size``."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form (hashes in base64, as in checkpoints)."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InclusionProof:
        """Parse :meth:`to_json` output."""
        return cls(
            int(d["leaf_index"]),
            int(d["tree_size"]),
            base64.b64decode(d["leaf_hash"]),
            tuple(base64.b64decode(h) for h in d["hashes"]),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof from ``old_size`` to ``new_size``."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "from": self.old_size,
            "to": self.new_size,
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ConsistencyProof:
        """Parse :meth:`to_json` output."""
        return cls(int(d["from"]), int(d["to"]), tuple(base64.b64decode(h) for h in d["hashes"]))


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")
