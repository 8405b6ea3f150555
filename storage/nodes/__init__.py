"""Storage nodes: the async blob-store interface and its backends.

``S3Node`` is imported lazily so that boto3 loads only when S3 is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.nodes.base import BlobStat, StorageNode, validate_key, validate_prefix
from storage.nodes.local import LocalFolderNode

if TYPE_CHECKING:
    from storage.nodes.s3 import S3Node

__all__ = [
    "BlobStat",
    "LocalFolderNode",
    "S3Node",
    "StorageNode",
    "validate_key",
    "validate_prefix",
]


def __getattr__(name: str) -> Any:
    if name == "S3Node":
        from storage.nodes.s3 import S3Node

        return S3Node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
