"""A storage node backed by a local folder (the embedded default).

Blob ``a/b/c`` is the file ``<root>/a/b/c``. Writes are atomic: the bytes go
to a temporary file in the same folder whose name contains ``#`` (a character
keys cannot contain, so temporary files are never listed nor mistaken for
blobs), are fsynced, renamed over the target, and the folder is fsynced.
Every path is checked to resolve under the root, so neither ``..`` nor a
symlink planted in the folder lets a key escape. A missing root folder means
the node is gone (NodeUnavailableError); it is never silently recreated.
"""

# ruff: noqa: PTH102, PTH105, PTH107, PTH112, PTH113, PTH114, PTH118, PTH120
# (str paths and os.path: os.walk and os.open work on them, and they are cheaper than Path
# objects on the hot path of every fragment read and write.)
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiofiles
import aiofiles.os

from storage.errors import (
    BlobNotFoundError,
    InvalidKeyError,
    NodeError,
    NodeFullError,
    NodeIOError,
    NodePermissionError,
    NodeUnavailableError,
)
from storage.nodes.base import BlobStat, validate_key, validate_prefix

_TEMP_MARK = "#"


def map_os_error(node: str, key: str | None, error: OSError) -> NodeError:
    """Translate an OSError of one node operation into the storage error tree."""
    code = error.errno
    text = f"{os.strerror(code) if code else 'I/O error'} ({error.__class__.__name__})"
    if code == errno.ENOENT:
        return BlobNotFoundError(node, key, "no such blob")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return NodeFullError(node, key, text)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return NodePermissionError(node, key, text)
    if code in (errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOTCONN, errno.EHOSTDOWN):
        return NodeUnavailableError(node, key, text)
    return NodeIOError(node, key, text)


class _DirSync:
    """Group-commit state of one folder's fsyncs."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.requested = 0  # tickets handed out (renames done)
        self.synced = 0  # highest ticket covered by a completed fsync
        self.users = 0


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFolderNode:
    """A node storing blobs as files under ``root``."""

    def __init__(
        self, name: str, root: Path, *, zone: str = "default", create: bool = True
    ) -> None:
        """Open (and by default create) the folder ``root``; remove stale temporary files.

        Precondition: ``name`` is unique in the pool and stable.
        """
        if not name:
            raise ValueError("a node needs a name")
        self._name = name
        self._zone = zone
        if create:
            root.mkdir(parents=True, exist_ok=True)
        self._root = os.path.realpath(root)
        self._dir_syncs: dict[str, _DirSync] = {}
        self._remove_stale_temps()

    @property
    def name(self) -> str:
        """The node's stable name."""
        return self._name

    @property
    def zone(self) -> str:
        """The node's failure domain."""
        return self._zone

    @property
    def root(self) -> Path:
        """The folder holding the blobs."""
        return Path(self._root)

    def __repr__(self) -> str:
        return f"LocalFolderNode({self._name!r}, {self._root!r}, zone={self._zone!r})"

    def _remove_stale_temps(self) -> None:
        # Temporary files left by a crash mid-write are invisible but take space.
        for dirpath, _dirs, files in os.walk(self._root):
            for f in files:
                if _TEMP_MARK in f:
                    with contextlib.suppress(OSError):  # best effort; a later open retries
                        os.remove(os.path.join(dirpath, f))

    def _check_root(self, key: str | None) -> None:
        if not os.path.isdir(self._root):
            raise NodeUnavailableError(self._name, key, f"node folder {self._root} is missing")

    def _path(self, key: str) -> str:
        validate_key(key)
        return os.path.join(self._root, key)

    def _check_inside(self, path: str, key: str) -> None:
        """Refuse a path that resolves outside the root (e.g. through a planted symlink)."""
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._root]) != self._root or real == self._root:
            raise InvalidKeyError(key, "resolves outside the node's folder")

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (temp file, fsync, rename, fsync folder)."""
        path = self._path(key)
        self._check_root(key)
        try:
            # One trip to a thread for the whole write: small fragments are dominated by
            # the hops between the loop and the threads, not by the bytes.
            loop = asyncio.get_running_loop()
            changed = await loop.run_in_executor(_IO, self._write_file, path, key, data)
            for folder in changed:
                await self._sync_dir(folder)
        except OSError as e:
            self._check_root(key)
            if e.errno == errno.ENOENT:
                # The folder vanished under us: that is a failed write, not a missing blob.
                raise NodeIOError(self._name, key, "folder disappeared during write") from e
            raise map_os_error(self._name, key, e) from e

    def _write_file(self, path: str, key: str, data: bytes) -> list[str]:
        """Write ``path`` atomically (in a thread); return the folders whose entries changed,
        deepest first, to be fsynced: the file's folder and those of created folders."""
        parent = os.path.dirname(path)
        changed = [parent]
        if not os.path.isdir(parent):
            changed += _make_folders(parent, self._root)
        self._check_inside(path, key)
        temp = f"{path}{_TEMP_MARK}{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._check_inside(path, key)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        return changed

    async def _sync_dir(self, parent: str) -> None:
        """Make a completed rename in ``parent`` durable, sharing fsyncs between writers.

        Group commit: each writer takes a ticket after its rename; one fsync of
        the folder that *starts* after a ticket was taken covers it, so writers
        that queued while an fsync ran are all covered by the next single one.
        """
        state = self._dir_syncs.setdefault(parent, _DirSync())
        state.requested += 1
        ticket = state.requested
        state.users += 1
        try:
            async with state.lock:
                if state.synced >= ticket:
                    return
                target = state.requested
                await _fsync_dir_async(parent)
                state.synced = target
        finally:
            state.users -= 1
            if state.users == 0:
                self._dir_syncs.pop(parent, None)

    async def get(self, key: str) -> bytes:
        """Return the blob's bytes; BlobNotFoundError if there is none."""
        path = self._path(key)
        self._check_root(key)
        try:
            self._check_inside(path, key)
            async with aiofiles.open(path, "rb") as f:
                data: bytes = await f.read()
            return data
        except OSError as e:
            self._check_root(key)
            if e.errno in (errno.EISDIR, errno.ENOTDIR):
                raise BlobNotFoundError(self._name, key, "no such blob") from e
            raise map_os_error(self._name, key, e) from e

    async def stat(self, key: str) -> BlobStat | None:
        """Size of the blob under ``key``, or None if there is none."""
        path = self._path(key)
        self._check_root(key)
        try:
            self._check_inside(path, key)
            st = await aiofiles.os.stat(path)
        except OSError as e:
            self._check_root(key)
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise map_os_error(self._name, key, e) from e
        if not os.path.isfile(path):  # noqa: ASYNC240 (one cheap stat)
            return None
        return BlobStat(key=key, size=st.st_size)

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        path = self._path(key)
        self._check_root(key)
        try:
            self._check_inside(path, key)
            await aiofiles.os.remove(path)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            self._check_root(key)
            raise map_os_error(self._name, key, e) from e

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every key starting with ``prefix`` (in no particular order)."""
        validate_prefix(prefix)
        self._check_root(None)
        # Walk only the deepest folder the prefix names fully, then filter by the rest.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = os.path.join(self._root, base_rel) if base_rel else self._root
        try:
            if base_rel:
                self._check_inside(base, prefix)
            keys = await aiofiles.os.wrap(_walk_keys)(self._root, base)
        except OSError as e:
            self._check_root(None)
            raise map_os_error(self._name, None, e) from e
        for key in keys:
            if key.startswith(prefix):
                yield key

    async def close(self) -> None:
        """Nothing to release: every file is closed after each operation."""


def _walk_keys(root: str, base: str) -> list[str]:
    keys: list[str] = []
    if not os.path.isdir(base):
        return keys
    for dirpath, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if _TEMP_MARK not in d]
        rel = os.path.relpath(dirpath, root)
        for f in files:
            if _TEMP_MARK in f:
                continue
            key = f if rel == "." else f"{rel}/{f}"
            try:
                validate_key(key)
            except InvalidKeyError:
                continue  # a file no put could have written; not a blob
            if not os.path.islink(os.path.join(dirpath, f)):
                keys.append(key)
    return keys


def _make_folders(folder: str, root: str) -> list[str]:
    """Create ``folder`` and its missing ancestors below ``root``; return the folders that
    gained an entry (each created folder's parent), deepest first."""
    missing: list[str] = []
    while not os.path.isdir(folder) and folder != root:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it
            os.mkdir(created)
    return [os.path.dirname(created) for created in missing]


# Fragment writes block on fsync; many in flight let the device merge them, so the pool
# is wider than the loop's default executor (min(32, cores + 4) threads).
_IO = ThreadPoolExecutor(max_workers=32, thread_name_prefix="local-node-io")


async def _fsync_dir_async(path: str) -> None:
    await asyncio.get_running_loop().run_in_executor(_IO, _fsync_dir, path)
