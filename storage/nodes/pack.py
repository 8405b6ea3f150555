"""Small blobs of one folder node, appended to pack files (group-committed) instead of
one file each.

A document of a few KiB is 6 fragments and 6 manifest copies: as files, 12 inode
creations (and a folder per document and node), which cost the kernel far more than the
bytes. A pack is an append-only file of records; a group of writes (every write queued
while the previous group was being made durable) is one ``pwrite`` and one
``fdatasync``, and each blob is then found through an in-memory index rebuilt by
scanning the packs at open. Format, recovery and limits: ``docs/storage.md``, "Pack
files".

Layout: ``<root>/#pack/<number>.pack`` (8 decimal digits). ``#`` is a character no key
may contain, so the folder is never listed as a blob nor reachable by a key. A new pack
is started when the current one would pass ``PACK_BYTES``.

Record (big-endian)::

    0   4  magic  b"NPK\\x01"
    4   1  op     0 = put, 1 = delete (tombstone, no data)
    5   2  key length
    7   4  data length
    11  4  CRC-32 of the data
    15  4  CRC-32 of bytes 0..15 and the key
    19     key (ASCII), then data

The last record of a key wins. At open, records are read in order; a record whose header
does not check out is skipped by searching for the next valid header (a flipped byte in
one header costs that record only); what cannot be parsed at the end of the last pack is
a write torn by a crash (never acknowledged) and is cut off. A blob's data CRC is checked
on every read: a mismatch is reported as an I/O error of the node, which readers treat
as a lost fragment.
"""

# ruff: noqa: PTH102, PTH112, PTH116, PTH118, PTH123, PTH208
from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import NamedTuple

log = logging.getLogger(__name__)

FOLDER = "#pack"
MAGIC = b"NPK\x01"
PUT, DELETE = 0, 1
# magic, op, key length, data length, data CRC, header CRC
_HEADER = struct.Struct(">4sBHII")
_CRC = struct.Struct(">I")
HEADER_BYTES = _HEADER.size + _CRC.size  # 19
PACK_BYTES = 256 * 1024 * 1024
_NAME = re.compile(r"(\d{8})\.pack")


class FolderChangedError(OSError):
    """The node's folder is not the one the pack log was opened in (replaced by another,
    e.g. a new disk): nothing of the group was written."""


class CorruptBlobError(OSError):
    """A packed blob whose bytes fail their CRC-32."""


class Location(NamedTuple):
    """Where a packed blob's bytes are."""

    pack: int
    offset: int
    size: int
    crc: int


def encode_record(op: int, key: str, data: bytes = b"", crc: int | None = None) -> bytes:
    """One record (see the module docstring); ``crc``: the data's CRC-32 if known."""
    k = key.encode("ascii")
    head = _HEADER.pack(MAGIC, op, len(k), len(data), zlib.crc32(data) if crc is None else crc)
    return head + _CRC.pack(zlib.crc32(k, zlib.crc32(head))) + k + data


def _parse_header(buf: bytes | memoryview, pos: int) -> tuple[int, str, int, int, int] | None:
    """(op, key, data offset, data length, data CRC) of a valid header at ``pos`` whose key
    is in ``buf``, or None."""
    end = pos + HEADER_BYTES
    if end > len(buf):
        return None
    magic, op, klen, dlen, dcrc = _HEADER.unpack_from(buf, pos)
    if magic != MAGIC or op not in (PUT, DELETE) or end + klen > len(buf):
        return None
    (hcrc,) = _CRC.unpack_from(buf, pos + _HEADER.size)
    key = bytes(buf[end : end + klen])
    if zlib.crc32(key, zlib.crc32(bytes(buf[pos : pos + _HEADER.size]))) != hcrc:
        return None
    try:
        return op, key.decode("ascii"), end + klen, dlen, dcrc
    except UnicodeDecodeError:
        return None


def scan(data: bytes | memoryview) -> tuple[list[tuple[int, str, int, int, int]], int, int]:
    """Parse a pack's bytes: its records ``(op, key, data offset, data length, data CRC)``
    in order, the end of the last complete record, and how many bytes were skipped
    between records (corrupt headers)."""
    records: list[tuple[int, str, int, int, int]] = []
    pos = end = skipped = 0
    size = len(data)
    while pos < size:
        parsed = _parse_header(data, pos)
        if parsed is not None and parsed[2] + parsed[3] <= size:
            records.append(parsed)
            pos = end = parsed[2] + parsed[3]
            continue
        # Resynchronise on the next valid, complete record; none: a torn tail.
        found = _next_record(data, pos + 1)
        if found is None:
            break
        skipped += found - pos
        pos = found
    return records, end, skipped


def _next_record(data: bytes | memoryview, start: int) -> int | None:
    raw = bytes(data) if isinstance(data, memoryview) else data
    at = raw.find(MAGIC, start)
    while at >= 0:
        parsed = _parse_header(raw, at)
        if parsed is not None and parsed[2] + parsed[3] <= len(raw):
            return at
        at = raw.find(MAGIC, at + 1)
    return None


class Write(NamedTuple):
    """One queued record and the future answered once it is durable (or failed)."""

    op: int
    key: str
    data: bytes
    done: asyncio.Future[None]


def fail_with_copy(write: Write, error: OSError) -> None:
    """The default answer to a write whose group failed: a copy of the group's error."""
    write.done.set_exception(type(error)(error.errno, error.strerror))


class PackLog:
    """The packed blobs of one node: an index over ``<root>/#pack`` and its group writer.

    One event loop at a time; the index changes only on it, after the bytes are durable.
    """

    def __init__(
        self,
        root: str,
        executor: Executor,
        failed: Callable[[Write, OSError], None] = fail_with_copy,
    ) -> None:
        """Open (creating if needed) the packs under ``root`` and index them. Blocking:
        reads every pack once. Raises OSError (e.g. the root is gone).

        ``failed(write, error)`` answers each write of a group that could not be made
        durable (it must settle ``write.done``, or hand the write to ``resubmit``)."""
        self._root = root
        self._folder = os.path.join(root, FOLDER)
        self._executor = executor
        self._failed = failed
        st = os.stat(root)
        self.identity = (st.st_dev, st.st_ino)
        if not os.path.isdir(self._folder):
            os.mkdir(self._folder)
            _fsync_dir(root)
        # Plain tuples of ints (pack, offset, size, CRC), not Locations: the garbage
        # collector stops tracking those, so an index of millions of blobs adds nothing
        # to the full collections of a long-running service.
        self._index: dict[str, tuple[int, int, int, int]] = {}
        self._fds: dict[int, int] = {}
        self._queue: list[Write] = []
        self._drainer: asyncio.Task[None] | None = None
        self.groups = 0  # groups made durable (for tests and benchmarks)
        numbers = sorted(
            int(m.group(1)) for n in os.listdir(self._folder) if (m := _NAME.fullmatch(n))
        )
        for i, number in enumerate(numbers):
            self._load(number, last=i == len(numbers) - 1)
        self._current = numbers[-1] if numbers else 0
        if not numbers:
            self._create(0)
        self._end = os.fstat(self._fds[self._current]).st_size

    def _path(self, number: int) -> str:
        return os.path.join(self._folder, f"{number:08d}.pack")

    def _load(self, number: int, *, last: bool) -> None:
        path = self._path(number)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._fds[number] = fd
        with open(path, "rb") as f:
            data = f.read()
        records, end, skipped = scan(data)
        for op, key, offset, size, crc in records:
            if op == DELETE:
                self._index.pop(key, None)
            else:
                self._index[key] = (number, offset, size, crc)
        if skipped:
            log.warning("%s: skipped %d corrupt bytes between records", path, skipped)
        if end < len(data):
            if last:  # a write torn by a crash: it was never acknowledged
                log.warning("%s: cutting a torn write of %d bytes", path, len(data) - end)
                os.ftruncate(fd, end)
                os.fsync(fd)
            else:
                log.warning("%s: %d unreadable bytes at the end", path, len(data) - end)

    def _create(self, number: int) -> None:
        fd = os.open(self._path(number), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.fsync(fd)
        _fsync_dir(self._folder)
        self._fds[number] = fd
        self._current, self._end = number, 0

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def location(self, key: str) -> Location | None:
        """Where the blob under ``key`` is, or None."""
        where = self._index.get(key)
        return None if where is None else Location._make(where)

    def pack_path(self, number: int) -> str:
        """The file of pack ``number``."""
        return self._path(number)

    def packed_keys(self) -> Iterator[str]:
        """Every packed key (a snapshot)."""
        return iter(list(self._index))

    async def read(self, key: str) -> bytes | None:
        """The blob's bytes, or None if it is not packed; CorruptBlobError if they fail
        their CRC."""
        loc = self.location(key)
        if loc is None:
            return None
        fd = self._fds[loc.pack]
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._executor, os.pread, fd, loc.size, loc.offset)
        if len(data) != loc.size or zlib.crc32(data) != loc.crc:
            raise CorruptBlobError(
                0, f"packed blob fails its CRC-32 (pack {loc.pack}, offset {loc.offset})"
            )
        return data

    async def put(self, key: str, data: bytes) -> None:
        """Append the blob; return once it is durable (OSError if it is not)."""
        await self.submit(PUT, key, data)

    async def delete(self, key: str) -> None:
        """Append a tombstone for ``key`` if it is packed or may be about to be (a write
        of it queued or in flight: the tombstone lands after it); durable on return."""
        if key in self._index or self._drainer is not None:
            await self.submit(DELETE, key, b"")

    def submit(self, op: int, key: str, data: bytes) -> asyncio.Future[None]:
        """Queue a record (``key``: ASCII, see validate_key) without waiting: the future
        answered once it is durable (the ``failed`` hook's answer if it is not).
        Cancelling the future does not withdraw a record already queued."""
        done = asyncio.get_running_loop().create_future()
        self.resubmit(Write(op, key, data, done))
        return done

    def resubmit(self, write: Write) -> None:
        """Queue a write whose future is still pending (e.g. one failed in another log)."""
        self._queue.append(write)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                group, self._queue = self._queue, []
                crcs = [zlib.crc32(w.data) for w in group]
                buf = b"".join(
                    [
                        encode_record(w.op, w.key, w.data, crc)
                        for w, crc in zip(group, crcs, strict=True)
                    ]
                )
                try:
                    number, start = await loop.run_in_executor(self._executor, self._write, buf)
                except OSError as e:
                    for w in group:
                        if not w.done.done():
                            self._failed(w, e)
                    continue
                self.groups += 1
                pos = start
                for w, crc in zip(group, crcs, strict=True):
                    pos += HEADER_BYTES + len(w.key)  # the data's offset (keys are ASCII)
                    if w.op == DELETE:
                        self._index.pop(w.key, None)
                    else:
                        self._index[w.key] = (number, pos, len(w.data), crc)
                    pos += len(w.data)
                    if not w.done.done():
                        w.done.set_result(None)
        finally:
            self._drainer = None
            for w in self._queue:  # only when cancelled (the loop is shutting down)
                w.done.cancel()

    def _write(self, buf: bytes) -> tuple[int, int]:
        """Append ``buf`` durably (in a thread): (pack number, offset). On failure the
        pack is cut back to where it was, so no partial group stays behind.

        The folder is checked first, once per group rather than once per write on the
        event loop: gone, FileNotFoundError; replaced, FolderChangedError. (The open
        pack would otherwise take writes that no one can ever read.)"""
        st = os.stat(self._root)
        if (st.st_dev, st.st_ino) != self.identity:
            raise FolderChangedError(errno.ESTALE, f"{self._root} is not the folder opened")
        if self._end and self._end + len(buf) > PACK_BYTES:
            self._create(self._current + 1)
        fd, start = self._fds[self._current], self._end
        try:
            view = memoryview(buf)
            at = start
            while view:
                n = os.pwrite(fd, view, at)
                view, at = view[n:], at + n
            os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                log.exception("%s: could not cut back a failed write", self._path(self._current))
            raise
        self._end = start + len(buf)
        return self._current, start

    def close(self) -> None:
        """Close the pack files."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
