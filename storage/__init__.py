"""Erasure-coded document storage across independent nodes.

Public API: :class:`DocumentStore` (put, read, recover, scrub), its
:class:`Manifest` and :class:`ScrubReport`, the node backends in
:mod:`storage.nodes`, and the error tree of :mod:`storage.errors`.
"""

from storage.errors import (
    BlobNotFoundError,
    ConfigError,
    DigestMismatchError,
    IntegrityError,
    InvalidKeyError,
    ManifestError,
    NodeError,
    NodeFullError,
    NodeIOError,
    NodePermissionError,
    NodeUnavailableError,
    SegmentFault,
    StorageError,
    UnrecoverableError,
    WriteFailedError,
)
from storage.manifest import CodecInfo, FragmentEntry, Manifest, SegmentEntry
from storage.repair import ScrubReport
from storage.store import DocumentStore

__all__ = [
    "BlobNotFoundError",
    "CodecInfo",
    "ConfigError",
    "DigestMismatchError",
    "DocumentStore",
    "FragmentEntry",
    "IntegrityError",
    "InvalidKeyError",
    "Manifest",
    "ManifestError",
    "NodeError",
    "NodeFullError",
    "NodeIOError",
    "NodePermissionError",
    "NodeUnavailableError",
    "ScrubReport",
    "SegmentEntry",
    "SegmentFault",
    "StorageError",
    "UnrecoverableError",
    "WriteFailedError",
]
