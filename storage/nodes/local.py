"""A storage node backed by a local folder (the embedded default).

Blob ``a/b/c`` is the file ``<root>/a/b/c``. Writes are atomic: the bytes go
to a temporary file in the same folder whose name contains ``#`` (a character
keys cannot contain, so temporary files are never listed nor mistaken for
blobs), which is renamed over the target. A put returns once the blob is durable:
small blobs (below ``SMALL_BLOB``) through a group commit of their filesystem
(one ``syncfs`` shared by every write that completed before it started), large
ones by an fsync of the file and a group-committed fsync of its folder.
With ``pack=True``, small blobs are appended to pack files instead
(storage.nodes.pack; docs/storage.md). Every path is checked to resolve under the root,
so neither ``..`` nor a
symlink planted in the folder lets a key escape. A missing root folder means
the node is gone (NodeUnavailableError); it is never silently recreated.
"""

# ruff: noqa: PTH102, PTH105, PTH107, PTH112, PTH114, PTH116, PTH118, PTH120
# (str paths and os.path: os.walk and os.open work on them, and they are cheaper than Path
# objects on the hot path of every fragment read and write.)
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import secrets
import stat
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from storage.nodes.pack import FOLDER as PACK_FOLDER
from storage.nodes.pack import PUT as PACK_PUT
from storage.nodes.pack import CorruptBlobError, FolderChangedError, Location, PackLog, Write

_TEMP_MARK = "#"
# Blobs below this size are made durable by their filesystem's group commit (no fsync of
# their own): for small files the cost is one journal commit per file, and one syncfs
# covers every file written before it. Larger blobs fsync their own data, so that a
# syncfs never has to flush megabytes of someone else's writes.
SMALL_BLOB = 256 * 1024
# Folders a node remembers as resolved inside its root for stat (a bound, not a tuning).
_STAT_FOLDERS = 1024


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


def _load_syncfs() -> Callable[[str], None] | None:
    """``syncfs(2)`` through libc (Linux), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(folder: str) -> None:
        # ctypes releases the GIL for the call. Since Linux 5.8 syncfs reports the
        # filesystem's writeback errors not yet reported through any descriptor (a fresh
        # descriptor samples the error state as "unseen"), so opening one per call loses
        # nothing and holds no descriptor between calls (which would keep it mounted).
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if fn(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
        finally:
            os.close(fd)

    return syncfs


_SYNCFS: Callable[[str], None] | None = _load_syncfs()


@dataclass
class _Pending:
    node: LocalFolderNode
    path: str
    key: str
    data: bytes
    done: asyncio.Future[None]


class _GroupWriter:
    """Group commit of the small writes to one filesystem (on one event loop).

    The writes queued while a group is being committed form the next group: a few
    threads write its files (temporary file, rename; no fsync), then one ``syncfs`` of
    the filesystem makes all of them durable, then every writer of the group is
    answered. The group grows with the load and an idle filesystem adds no delay; few
    threads and one trip per group keep the event loop's share of the GIL (many threads
    each doing short syscalls starve the loop). A failed syncfs fails every write of its
    group (the kernel reports an error once, so a retry's success would say nothing
    about their data).
    """

    def __init__(self) -> None:
        self.queue: list[_Pending] = []
        self.running: asyncio.Task[None] | None = None
        self.syncs = 0  # syncfs calls made (for tests and benchmarks)

    async def write(self, node: LocalFolderNode, path: str, key: str, data: bytes) -> None:
        """Write the blob; return once it is durable (OSError or InvalidKeyError if not)."""
        done = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(node, path, key, data, done))
        if self.running is None:
            self.running = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                group = [p for p in self.queue if not p.done.done()]  # skip cancelled puts
                self.queue = []
                parts = [group[i::_GROUP_THREADS] for i in range(_GROUP_THREADS)]
                parts = [part for part in parts if part]
                outcomes = await asyncio.gather(
                    *(loop.run_in_executor(_IO, _write_part, part) for part in parts)
                )
                written: list[_Pending] = []
                for part, errors in zip(parts, outcomes, strict=True):
                    for p, error in zip(part, errors, strict=True):
                        if error is None:
                            written.append(p)
                        elif not p.done.done():
                            p.done.set_exception(error)
                if not written:
                    continue
                try:
                    await _syncfs_async(written[0].node.root_path)
                except OSError as e:
                    for p in written:
                        if not p.done.done():
                            p.done.set_exception(OSError(e.errno, e.strerror))
                    continue
                self.syncs += 1
                for p in written:
                    if not p.done.done():
                        p.done.set_result(None)
        finally:
            self.running = None
            for p in self.queue:  # only when cancelled (the loop is shutting down)
                p.done.cancel()


# Threads writing one group's files in parallel (the kernel work of file creation).
_GROUP_THREADS = 3


def _write_part(part: list[_Pending]) -> list[BaseException | None]:
    """Write some blobs of a group (in a thread); each blob's error, or None."""
    errors: list[BaseException | None] = []
    checked: dict[str, set[str]] = {}  # per node root: folders resolved inside it
    for p in part:
        try:
            p.node._write_file(
                p.path, p.key, p.data, False, checked.setdefault(p.node.root_path, set())
            )
        except (OSError, InvalidKeyError) as e:
            errors.append(e)
        else:
            errors.append(None)
    return errors


# One group writer per (event loop, device): nodes on the same filesystem share it.
_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _GroupWriter]] = (
    weakref.WeakKeyDictionary()
)


def _group_writer(device: int) -> _GroupWriter:
    per_loop = _GROUPS.setdefault(asyncio.get_running_loop(), {})
    writer = per_loop.get(device)
    if writer is None:
        writer = per_loop[device] = _GroupWriter()
    return writer


class LocalFolderNode:
    """A node storing blobs as files under ``root``."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        zone: str = "default",
        create: bool = True,
        pack: bool = False,
    ) -> None:
        """Open (and by default create) the folder ``root``; remove stale temporary files.

        ``pack``: blobs below ``SMALL_BLOB`` are appended to pack files
        (storage.nodes.pack) instead of one file each; blobs written as files before
        stay readable. Precondition: ``name`` is unique in the pool and stable.
        """
        if not name:
            raise ValueError("a node needs a name")
        self._name = name
        self._zone = zone
        if create:
            root.mkdir(parents=True, exist_ok=True)
        self._root = os.path.realpath(root)
        self._dir_syncs: dict[str, _DirSync] = {}
        self._stat_folders: set[str] = set()  # folders resolved inside the root by stat
        try:
            self._device: int | None = os.stat(self._root).st_dev
        except OSError:
            self._device = None  # no folder: every operation reports the node as gone
        self._remove_stale_temps()
        self._packed = pack
        self._pack: PackLog | None = None
        # With packs: the top-level folders that may hold blobs as files (of keys written
        # before packing, or too large for a pack); a key outside them is in a pack or
        # nowhere, so a stat of it needs no look at the disk.
        self._file_tops: set[str] = set()
        if pack and self._device is not None:
            self._open_pack()

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

    def _live_pack(self, key: str | None) -> PackLog:
        """The pack log of the folder as it is now: NodeUnavailableError if the folder is
        gone; a folder replaced by another (a new disk) gets the packs found in it."""
        try:
            st = os.stat(self._root)
        except OSError:
            raise NodeUnavailableError(
                self._name, key, f"node folder {self._root} is missing"
            ) from None
        pack = self._pack
        if pack is None or pack.identity != (st.st_dev, st.st_ino):
            if pack is not None:
                pack.close()
            self._pack = None
            try:
                self._device = st.st_dev
                pack = self._open_pack()
            except OSError as e:
                raise map_os_error(self._name, key, e) from e
        return pack

    def _open_pack(self) -> PackLog:
        self._file_tops = {n for n in os.listdir(self._root) if n != PACK_FOLDER}  # noqa: PTH208
        self._pack = PackLog(self._root, _IO, self._pack_failed)
        return self._pack

    def _pack_failed(self, write: Write, error: OSError) -> None:
        """Answer a packed write whose group failed: a folder replaced by another (a new
        disk) takes the put in its own pack log; anything else is the node's error."""
        try:
            if isinstance(error, FolderChangedError) and write.op == PACK_PUT:
                self._live_pack(write.key).resubmit(write)
                return
            self._check_root(write.key)
            if error.errno == errno.ENOENT:  # the folder vanished: a failed write, not a miss
                raise NodeIOError(self._name, write.key, "folder disappeared during write")
            raise map_os_error(self._name, write.key, error)
        except NodeError as e:
            e.__cause__ = error
            write.done.set_exception(e)

    def blob_location(self, key: str) -> tuple[Path, int, int] | None:
        """(pack file, offset, size) of a packed blob, or None if ``key`` is not packed
        (for operators and tests: where to look at, or damage, a blob's bytes)."""
        loc: Location | None = self._pack.location(key) if self._pack is not None else None
        if loc is None or self._pack is None:
            return None
        return Path(self._pack.pack_path(loc.pack)), loc.offset, loc.size

    def _path(self, key: str) -> str:
        validate_key(key)
        return os.path.join(self._root, key)

    def _check_inside(self, path: str, key: str) -> None:
        """Refuse a path that resolves outside the root (e.g. through a planted symlink)."""
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._root]) != self._root or real == self._root:
            raise InvalidKeyError(key, "resolves outside the node's folder")

    @property
    def root_path(self) -> str:
        """The folder holding the blobs, resolved (a str, for os calls)."""
        return self._root

    def put_soon(self, key: str, data: bytes) -> asyncio.Future[None] | None:
        """Start a packed put without a coroutine of its own: the future of its group
        commit (failing with the error ``put`` would raise), or None if the blob is not
        for a pack (then call ``put``). Raises at once what ``put`` would raise before
        any I/O (an invalid key, a missing folder)."""
        if not self._packed or len(data) >= SMALL_BLOB:
            return None
        validate_key(key)  # no path: a packed blob is never a file
        # The writer thread checks the folder before each group (see PackLog), and
        # _pack_failed moves a put that finds a new folder (disk) to its pack log.
        return (self._pack or self._live_pack(key)).submit(PACK_PUT, key, data)

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (temp file, rename) and durably
        (group-committed syncfs for small blobs; fsync of file and folder for large ones)."""
        packed = self.put_soon(key, data)
        if packed is not None:
            await packed
            return
        path = self._path(key)
        try:
            if len(data) < SMALL_BLOB and _SYNCFS is not None and self._device is not None:
                # A missing root fails the write (the folders below it cannot be made)
                # and is reported below: no check of it first on the loop.
                await _group_writer(self._device).write(self, path, key, data)
                return
            self._check_root(key)
            self._file_tops.add(key.partition("/")[0])
            # One trip to a thread for the whole write, then the folders' fsyncs.
            loop = asyncio.get_running_loop()
            changed = await loop.run_in_executor(_IO, self._write_file, path, key, data, True)
            for folder in changed:
                await self._sync_dir(folder)
            if self._pack is not None:  # a packed blob of the key would shadow the file
                await self._pack.delete(key)
        except OSError as e:
            self._check_root(key)
            if e.errno == errno.ENOENT:
                # The folder vanished under us: that is a failed write, not a missing blob.
                raise NodeIOError(self._name, key, "folder disappeared during write") from e
            raise map_os_error(self._name, key, e) from e

    def _write_file(
        self, path: str, key: str, data: bytes, fsync: bool, checked: set[str] | None = None
    ) -> list[str]:
        """Write ``path`` atomically (in a thread), fsyncing the data if ``fsync``; return
        the folders whose entries changed, deepest first: the file's folder and those of
        created folders (to be fsynced unless a syncfs makes everything durable).
        ``checked``: folders already known to resolve inside the root (shared by the
        writes of one group: every syscall of a thread costs the event loop a GIL hop)."""
        parent = os.path.dirname(path)
        changed = [
            parent,
            *self._prepare_folder(parent, key, set() if checked is None else checked),
        ]
        temp = f"{path}{_TEMP_MARK}{secrets.token_hex(8)}"
        try:
            # O_EXCL|O_NOFOLLOW: never through a planted symlink. The rename below replaces
            # the name itself (it never follows a symlink there), so a folder resolved
            # inside the root keeps the whole write inside it.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(temp, flags, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        return changed

    def _prepare_folder(self, folder: str, key: str, checked: set[str]) -> list[str]:
        """Make sure ``folder`` exists and resolves inside the root; return the folders
        that gained an entry by creating it (each created folder's parent), deepest first.

        Only the deepest folder that already existed is resolved (once per ``checked``);
        the folders made below it here are real folders (mkdir never follows a link).
        """
        if folder in checked:
            return []
        existing, missing = folder, []
        while not os.path.isdir(existing) and existing != self._root:
            missing.append(existing)
            existing = os.path.dirname(existing)
        if existing not in checked:
            self._check_inside_folder(existing, key)
            checked.add(existing)
        for made in reversed(missing):
            try:
                os.mkdir(made)
            except FileExistsError:  # a concurrent writer made it: resolve it too
                self._check_inside_folder(made, key)
        checked.add(folder)
        return [os.path.dirname(made) for made in missing]

    def _check_inside_folder(self, folder: str, key: str) -> None:
        """Refuse a folder that resolves outside the root (the root itself is inside)."""
        real = os.path.realpath(folder)
        if os.path.commonpath([real, self._root]) != self._root:
            raise InvalidKeyError(key, "resolves outside the node's folder")

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
        if self._packed:
            pack = self._live_pack(key)
            try:
                packed = await pack.read(key)
            except CorruptBlobError as e:
                raise NodeIOError(self._name, key, e.strerror or "corrupt packed blob") from e
            except OSError as e:
                self._check_root(key)
                raise map_os_error(self._name, key, e) from e
            if packed is not None:
                return packed
        try:  # a missing root fails the open and is reported below
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
        if self._packed:
            loc = self._live_pack(key).location(key)
            if loc is not None:
                return BlobStat(key=key, size=loc.size)
            if key.partition("/")[0] not in self._file_tops:
                return None
        try:  # a missing root fails the stat and is reported below
            folder = os.path.dirname(path)
            if folder not in self._stat_folders:
                # Resolved once per folder (a put stats the manifest key on every node of
                # its placement first: all in one folder), then remembered.
                self._check_inside_folder(folder, key)
                if len(self._stat_folders) >= _STAT_FOLDERS:
                    self._stat_folders.clear()
                self._stat_folders.add(folder)
            # In the loop: one stat costs less than a trip to a thread. lstat: a link in
            # the folder is not a blob (nor followed).
            st = os.lstat(path)
        except OSError as e:
            self._check_root(key)
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise map_os_error(self._name, key, e) from e
        if not stat.S_ISREG(st.st_mode):
            return None
        return BlobStat(key=key, size=st.st_size)

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        path = self._path(key)
        self._check_root(key)
        if self._packed:
            try:
                await self._live_pack(key).delete(key)
            except OSError as e:
                raise map_os_error(self._name, key, e) from e
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
        if self._packed:
            packed = [k for k in self._live_pack(None).packed_keys() if k.startswith(prefix)]
            seen = set(packed)
            keys = packed + [k for k in keys if k not in seen]
        for key in keys:
            if key.startswith(prefix):
                yield key

    async def close(self) -> None:
        """Close the pack files (other files are closed after each operation)."""
        if self._pack is not None:
            self._pack.close()
            self._pack = None


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


# Fragment writes block on fsync; many in flight let the device merge them, so the pool
# is wider than the loop's default executor (min(32, cores + 4) threads).
_IO = ThreadPoolExecutor(max_workers=32, thread_name_prefix="local-node-io")


async def _fsync_dir_async(path: str) -> None:
    await asyncio.get_running_loop().run_in_executor(_IO, _fsync_dir, path)


async def _syncfs_async(folder: str) -> None:
    assert _SYNCFS is not None
    await asyncio.get_running_loop().run_in_executor(_IO, _SYNCFS, folder)
