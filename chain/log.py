"""The persisted, append-only RFC 9162 Merkle log of one validator.

On disk, in one directory (format described in ``docs/merkle.md``)::

    nodes        every perfect subtree root, 32 bytes each, in post-order
    log.sqlite   entries (index -> bytes, leaf-hash prefix index) and the commit marker

``nodes`` holds node ``(level, index)`` (the root of leaves
``[index * 2**level, (index + 1) * 2**level)``) at record :func:`node_position`. Post-order
makes an append a single sequential write: leaf ``j`` is followed by the subtrees it
completes. Every RFC 9162 proof element is the root of a range that splits into at most
log2(n) perfect subtrees, so a proof costs O(log n) 32-byte ``pread`` calls whatever the
log's size, and an append costs O(k + log n) hashes for k entries.

Durability: ``append`` writes and fsyncs the new nodes, then commits one SQLite transaction
holding the entries and the new (size, root). That transaction is the commit marker: a
crash at any point leaves either the old or the new committed size, and :meth:`MerkleLog.open`
cuts the ``nodes`` file back to the committed size (a crash can leave a partial tail there)
and checks the stored root against the nodes.

One writer thread; readers may be other threads of the same process. Readers use their
own SQLite connection (WAL: they never wait for the writer's transaction or its fsync)
and see an append only once it is committed; the writer may run in a background thread
(``chain.node.deferred_ledger``) while the event loop keeps serving reads.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from chain import merkle
from chain.errors import LogError, ProofError
from chain.merkle import HASH_SIZE, CompactRange

FORMAT_VERSION = 1
NODES_FILE = "nodes"
DB_FILE = "log.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    prefix INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_prefix ON entries (prefix);
"""


def node_count(size: int) -> int:
    """Return how many perfect subtrees a tree of ``size`` leaves has (records in ``nodes``)."""
    return 2 * size - size.bit_count()


def node_position(level: int, index: int) -> int:
    """Return the record number of node ``(level, index)`` in the post-order ``nodes`` file.

    The node is written right after leaf ``m - 1`` with ``m = (index + 1) << level``,
    followed only by the higher subtrees that leaf also completes (one per trailing
    zero of ``index + 1``). Precondition: ``level >= 0`` and ``index >= 0``.
    """
    m = (index + 1) << level
    above = ((index + 1) & -(index + 1)).bit_length() - 1
    return node_count(m) - 1 - above


# SQLite integers are signed 64-bit; the first 8 bytes of a SHA-256 are uniform, so they
# are a compact index key. Collisions (cheap to make on purpose at 64 bits) are harmless:
# lookups confirm the full leaf hash against the nodes file.
_PREFIXES = struct.Struct(">q24x")  # the prefix of each 32-byte leaf hash in a joined run


def _prefix(leaf: bytes) -> int:
    return int.from_bytes(leaf[:8], "big", signed=True)


def _postorder(old_size: int, levels: list[list[bytes]]) -> bytes:
    """Interleave the nodes completed by an append in the order they go on disk."""
    out: list[bytes] = []
    taken = [0] * len(levels)
    leaves = levels[0]
    for offset, leaf in enumerate(leaves):
        out.append(leaf)
        done = old_size + offset + 1
        for level in range(1, ((done & -done).bit_length() - 1) + 1):
            out.append(levels[level][taken[level]])
            taken[level] += 1
    return b"".join(out)


class MerkleLog:
    """An append-only Merkle log persisted in a directory; see the module docstring."""

    def __init__(
        self, directory: Path, db: sqlite3.Connection, nodes_fd: int, reader: sqlite3.Connection
    ) -> None:
        """Use :meth:`open`; this only wires already opened resources together.

        ``db`` is the writer's connection, ``reader`` a second one that serves reads.
        """
        self._dir = directory
        self._db = db
        self._rdb = reader
        self._fd = nodes_fd
        # One lock per connection: sqlite3 connections are not for concurrent use.
        self._db_lock = threading.Lock()  # the reader's
        self._write_lock = threading.Lock()  # the writer's (and the nodes file's tail)
        # (size, root, frontier) replaced as one tuple, so a reader in another thread
        # never sees the size of one append with the root of another.
        self._head: tuple[int, bytes, CompactRange] = (
            0,
            merkle.empty_root(),
            CompactRange.empty(),
        )
        self._closed = False

    # -- opening and recovery ---------------------------------------------------

    @classmethod
    def open(cls, directory: Path) -> MerkleLog:
        """Open the log in ``directory``, creating it when missing, recovering after a crash.

        Recovery cuts the ``nodes`` file back to the committed size. Raises LogError
        when the files are corrupt beyond what a crash can cause (nodes missing below
        the committed size, entries missing, or nodes that do not hash to the stored root).
        """
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            created = not (directory / NODES_FILE).exists()
            fd = os.open(directory / NODES_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LogError(f"cannot open Merkle log in {directory}: {exc}") from exc
        try:
            db = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsync'd at every commit, so a returned append survives
            # power loss, not only a process crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA cache_size=-65536")
            db.executescript(_SCHEMA)
            if created:
                _fsync_directory(directory)
            reader = sqlite3.connect(directory / DB_FILE, check_same_thread=False)
            reader.execute("PRAGMA cache_size=-16384")
        except sqlite3.Error as exc:
            os.close(fd)
            raise LogError(f"cannot open the Merkle log database in {directory}: {exc}") from exc
        log = cls(directory, db, fd, reader)
        try:
            log._recover()
        except BaseException:
            log.close()
            raise
        return log

    def _meta(self) -> dict[str, bytes]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {str(k): bytes(v) for k, v in rows}

    def _recover(self) -> None:
        meta = self._meta()
        if not meta:
            if os.fstat(self._fd).st_size:
                raise LogError(
                    f"{self._dir / DB_FILE} has no commit marker but {self._dir / NODES_FILE} "
                    f"holds nodes: the database was deleted or replaced"
                )
            with self._write_lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("version", FORMAT_VERSION.to_bytes(4, "big")),
                        ("size", (0).to_bytes(8, "big")),
                        ("root", merkle.empty_root()),
                    ],
                )
                self._db.execute("COMMIT")
            meta = self._meta()
        version = int.from_bytes(meta.get("version", b""), "big")
        if version != FORMAT_VERSION:
            raise LogError(
                f"Merkle log in {self._dir} has format version {version}, "
                f"this code reads {FORMAT_VERSION}"
            )
        size = int.from_bytes(meta["size"], "big")
        stored_root = meta["root"]
        want = node_count(size) * HASH_SIZE
        have = os.fstat(self._fd).st_size
        if have < want:
            raise LogError(
                f"{self._dir / NODES_FILE} has {have} bytes, the committed size {size} "
                f"needs {want}: the file was truncated or replaced"
            )
        if have > want:
            # The tail of an append that crashed before its commit marker.
            os.ftruncate(self._fd, want)
            os.fsync(self._fd)
        (last,) = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()
        if last != size:
            raise LogError(
                f"{self._dir / DB_FILE} holds {last} entries but its commit marker says {size}"
            )
        frontier = self._compact_range_at(size)
        root = frontier.root()
        if root != stored_root:
            raise LogError(
                f"nodes in {self._dir / NODES_FILE} hash to {root.hex()}, the committed "
                f"root of size {size} is {stored_root.hex()}: the nodes file is corrupt"
            )
        self._head = (size, root, frontier)

    # -- reading ----------------------------------------------------------------

    def _node(self, level: int, index: int) -> bytes:
        pos = node_position(level, index) * HASH_SIZE
        try:
            data = os.pread(self._fd, HASH_SIZE, pos)
        except OSError as exc:
            raise LogError(f"cannot read {self._dir / NODES_FILE}: {exc}") from exc
        if len(data) != HASH_SIZE:
            raise LogError(
                f"{self._dir / NODES_FILE}: node ({level}, {index}) at byte {pos} is missing "
                f"(file truncated?)"
            )
        return data

    def _compact_range_at(self, size: int) -> CompactRange:
        if size == 0:
            return CompactRange.empty()
        nodes = merkle.perfect_subtrees(0, size)
        return CompactRange(size, tuple(self._node(level, idx) for level, idx in nodes))

    @property
    def size(self) -> int:
        """The committed number of entries."""
        return self._head[0]

    def head(self) -> tuple[int, bytes]:
        """Return the committed (size, root) as one consistent pair."""
        size, root, _ = self._head
        return size, root

    @property
    def directory(self) -> Path:
        """The directory holding the log's files."""
        return self._dir

    def root(self) -> bytes:
        """Return the root of the whole committed log (cached; no I/O)."""
        return self._head[1]

    def root_at(self, size: int) -> bytes:
        """Return the root of the first ``size`` entries; O(log n) reads.

        Raises LogError unless ``0 <= size <= self.size``.
        """
        current, root, _ = self._head
        self._check_size(size)
        if size == current:
            return root
        return self._compact_range_at(size).root()

    def compact_range(self, size: int | None = None) -> CompactRange:
        """Return the frontier of the first ``size`` entries (default: all); O(log n) reads."""
        current, _, frontier = self._head
        if size is None or size == current:
            return frontier
        self._check_size(size)
        return self._compact_range_at(size)

    def entry(self, index: int) -> bytes:
        """Return entry ``index``. Raises LogError unless ``0 <= index < self.size``."""
        if not 0 <= index < self.size:
            raise LogError(f"entry {index} is outside the log of size {self.size}")
        with self._db_lock:
            row = self._rdb.execute("SELECT entry FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise LogError(f"entry {index} is missing from {self._dir / DB_FILE}")
        return bytes(row[0])

    def leaf_hash(self, index: int) -> bytes:
        """Return the leaf hash of entry ``index``; one read. LogError when out of range."""
        if not 0 <= index < self.size:
            raise LogError(f"leaf {index} is outside the log of size {self.size}")
        return self._node(0, index)

    def leaf_index(self, leaf: bytes) -> int | None:
        """Return the smallest index whose leaf hash is ``leaf``, or None; an index lookup."""
        if len(leaf) != HASH_SIZE:
            return None
        size = self.size
        with self._db_lock:
            rows = self._rdb.execute(
                "SELECT idx FROM entries WHERE prefix = ? ORDER BY idx", (_prefix(leaf),)
            ).fetchall()
        for (idx,) in rows:
            if idx < size and self._node(0, idx) == leaf:
                return int(idx)
        return None

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size``.

        O(log n) reads. Raises LogError unless ``0 <= index < size <= self.size``.
        """
        self._check_size(size)
        if not 0 <= index < size:
            raise LogError(f"leaf {index} is outside a tree of size {size}")
        ranges = merkle.inclusion_proof_ranges(index, size)
        return merkle.proof_from_ranges(ranges, self._node)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``old_size`` to ``new_size``.

        O(log n) reads. Raises LogError unless ``0 <= old_size <= new_size <= self.size``.
        """
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise LogError(f"old size {old_size} must lie between 0 and new size {new_size}")
        ranges = merkle.consistency_proof_ranges(old_size, new_size)
        return merkle.proof_from_ranges(ranges, self._node)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise LogError(f"tree size {size} is outside the log of size {self.size}")

    # -- appending --------------------------------------------------------------

    def append(
        self,
        entries: Sequence[bytes],
        leaves: Sequence[bytes] | None = None,
        expect: tuple[int, bytes] | None = None,
    ) -> tuple[int, bytes]:
        """Append ``entries``; return the new (size, root) once durable on disk.

        ``leaves``, when given, are the entries' leaf hashes (precondition:
        ``leaves[i] == merkle.leaf_hash(entries[i])``, e.g. a verified block's), so the
        entries are not hashed again. ``expect``, when given, is the (size, root) the
        append must lead to: LogError before anything is written otherwise. O(k + log n)
        hashing, one sequential write and one SQLite transaction for k entries. Single
        writer: concurrent calls are serialized. Raises LogError when the disk write fails;
        the log then stays at its previous size.
        """
        if self._closed:
            raise LogError(f"Merkle log in {self._dir} is closed")
        with self._write_lock:
            old_size, old_root, old_frontier = self._head
            if not entries:
                return old_size, old_root
            if leaves is None:
                leaves = [merkle.leaf_hash(bytes(e)) for e in entries]
            elif len(leaves) != len(entries):
                raise LogError(f"{len(leaves)} leaf hashes given for {len(entries)} entries")
            try:
                levels, frontier_hashes = merkle.extend_levels(
                    old_size, old_frontier.hashes, leaves
                )
            except ProofError as exc:  # pragma: no cover - frontier is always consistent
                raise LogError(str(exc)) from exc
            new_size = old_size + len(leaves)
            frontier = CompactRange(new_size, frontier_hashes)
            root = frontier.root()
            if expect is not None and expect != (new_size, root):
                raise LogError(
                    f"appending {len(entries)} entries to {old_size} gives size {new_size} "
                    f"root {root.hex()}, expected size {expect[0]} root {expect[1].hex()}"
                )
            offset = node_count(old_size) * HASH_SIZE
            data = _postorder(old_size, levels)
            try:
                # A failed earlier append may have left bytes here; they are overwritten.
                os.ftruncate(self._fd, offset)
                written = os.pwrite(self._fd, data, offset)
                while written < len(data):
                    written += os.pwrite(self._fd, data[written:], offset + written)
                os.fsync(self._fd)
            except OSError as exc:
                raise LogError(f"cannot write {self._dir / NODES_FILE}: {exc}") from exc
            prefixes = (p for (p,) in _PREFIXES.iter_unpack(b"".join(leaves)))
            rows = zip(range(old_size, new_size), map(bytes, entries), prefixes, strict=True)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT INTO entries (idx, entry, prefix) VALUES (?, ?, ?)", rows
                    )
                    self._db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'size'",
                        (new_size.to_bytes(8, "big"),),
                    )
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'root'", (root,))
                    self._db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise LogError(f"cannot commit to {self._dir / DB_FILE}: {exc}") from exc
            self._head = (new_size, root, frontier)
            return new_size, root

    # -- closing ----------------------------------------------------------------

    def close(self) -> None:
        """Release the files; further calls on this object are errors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._write_lock, self._db_lock:
            self._db.close()
            self._rdb.close()
        os.close(self._fd)

    def __enter__(self) -> MerkleLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fsync_directory(directory: Path) -> None:
    # A new file's directory entry is durable only once its directory is fsync'd.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
