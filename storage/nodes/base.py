"""The interface every storage node implements: a flat, async blob store.

A node holds immutable blobs under keys. Keys are ``/``-separated relative paths
of segments made of ``[A-Za-z0-9._-]`` (no empty segment, no ``.`` or ``..``,
at most 512 characters); :func:`validate_key` enforces that, so no key can
escape a node's folder or bucket prefix. Backends translate their own failures
into :mod:`storage.errors` types carrying the node name and the key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from storage.errors import InvalidKeyError

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# The whole rule in one pattern (segments that are not "." or "..", joined by "/"): one
# match per key, as every node call checks its key (the loop below only says what is wrong).
_KEY_SEGMENT = r"(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+"
_KEY = re.compile(rf"{_KEY_SEGMENT}(?:/{_KEY_SEGMENT})*")
MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe blob key, else raise InvalidKeyError."""
    if len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key):
        return key
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(key, f"must be 1..{MAX_KEY_LENGTH} characters")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKeyError(key, "empty, '.' or '..' path segment")
        if not _SEGMENT.fullmatch(part):
            raise InvalidKeyError(key, "only [A-Za-z0-9._-] and '/' are allowed")
    raise AssertionError(f"_KEY refused {key!r}, which the segment rules allow")


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a valid key optionally ending in ``/``."""
    if prefix:
        validate_key(prefix.rstrip("/"))
    return prefix


@dataclass(frozen=True)
class BlobStat:
    """What a node knows about one blob without reading it."""

    key: str
    size: int


@runtime_checkable
class StorageNode(Protocol):
    """One independent storage node: a local folder, an S3 bucket, ...

    ``name`` is unique in a pool and stable for the node's life (manifests name
    it); ``zone`` is its failure domain (placement spreads fragments across zones).

    A node may also offer ``put_soon(key, data) -> asyncio.Future[None] | None``: the
    write queued at once, its future answered as ``put`` would return or raise (None:
    not for this write, call ``put``). NodePool.put_all then waits on that future instead
    of running a task per write (LocalFolderNode: packed blobs).
    """

    @property
    def name(self) -> str: ...

    @property
    def zone(self) -> str: ...

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see all of it or nothing."""
        ...

    async def get(self, key: str) -> bytes:
        """Return the blob's bytes; BlobNotFoundError if there is none."""
        ...

    async def stat(self, key: str) -> BlobStat | None:
        """Size of the blob under ``key``, or None if there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every key starting with ``prefix`` (in no particular order)."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
