"""Errors of the storage layer.

Every error that leaves ``storage`` is a :class:`StorageError`; lower-layer
errors (``OSError``, botocore, timeouts) are translated where they cross into
this package, so callers never see a bare ``OSError`` or ``ClientError``::

    StorageError
    ├── ConfigError                 bad codec parameters, node list, placement request
    ├── InvalidKeyError             a blob key that could escape its node, or is malformed
    ├── NodeError                   one node failed one operation (carries node and key)
    │   ├── NodeUnavailableError    unreachable, timed out, connection refused
    │   ├── BlobNotFoundError       the node answered: no such blob
    │   ├── NodeFullError           disk full / quota exceeded
    │   ├── NodePermissionError     permission denied, access denied, object locked
    │   └── NodeIOError             any other I/O or S3 error
    ├── IntegrityError              bytes that do not match their recorded digest
    │   └── DigestMismatchError     the caller's expected SHA-256 differs from the stream's
    ├── ManifestError               a manifest that is malformed, of an unknown version, or missing
    ├── WriteFailedError            a document could not be stored; nothing of it remains visible
    └── UnrecoverableError          more than m fragments of some segments are bad
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class StorageError(Exception):
    """Base of every error raised by the storage layer."""


class ConfigError(StorageError):
    """Invalid configuration: codec parameters, node pool, placement request."""


class InvalidKeyError(StorageError):
    """A blob key that is malformed or could escape its node's namespace."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid blob key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class NodeError(StorageError):
    """One node failed one operation. ``node`` and ``key`` say which."""

    def __init__(self, node: str, key: str | None, message: str) -> None:
        where = f"node {node!r}" + (f", key {key!r}" if key is not None else "")
        super().__init__(f"{where}: {message}")
        self.node = node
        self.key = key
        self.message = message


class NodeUnavailableError(NodeError):
    """The node could not be reached or did not answer in time."""


class BlobNotFoundError(NodeError):
    """The node answered that it holds no blob under that key."""


class NodeFullError(NodeError):
    """The node has no space left for the write."""


class NodePermissionError(NodeError):
    """The node refused the operation (permissions, access denied, object lock)."""


class NodeIOError(NodeError):
    """Any other I/O failure of a node."""


class IntegrityError(StorageError):
    """Bytes that do not match the digest recorded for them."""


class DigestMismatchError(IntegrityError):
    """The document's SHA-256 differs from the one the caller expected."""

    def __init__(self, expected: str, calculated: str) -> None:
        super().__init__(
            f"document SHA-256 mismatch: expected {expected}, calculated {calculated}; "
            "nothing was stored"
        )
        self.expected = expected
        self.calculated = calculated


class ManifestError(StorageError):
    """A manifest that is missing, malformed, or of an unsupported version."""


class WriteFailedError(StorageError):
    """A document could not be stored; whatever was written of it has been removed."""

    def __init__(self, message: str, causes: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.causes = tuple(causes)


@dataclass(frozen=True)
class SegmentFault:
    """Why one segment could not be rebuilt: the bad fragments, node by node."""

    segment: int
    faults: Mapping[str, str]  # node name -> what was wrong with its fragment


class UnrecoverableError(StorageError):
    """More than m fragments of one or more segments are missing or corrupt."""

    def __init__(self, doc_id: str, segments: Sequence[SegmentFault]) -> None:
        parts = []
        for s in segments:
            nodes = ", ".join(f"{n}: {why}" for n, why in sorted(s.faults.items()))
            parts.append(f"segment {s.segment} ({nodes})")
        super().__init__(
            f"document {doc_id}: {len(segments)} segment(s) cannot be rebuilt: " + "; ".join(parts)
        )
        self.doc_id = doc_id
        self.segments = tuple(segments)
