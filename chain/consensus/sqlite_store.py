"""A validator's durable consensus state in one SQLite file (``consensus.sqlite``): the
safety state, blocks, the committed chain and committed checkpoints.

Implements :class:`~chain.consensus.safety.SafetyStore` and
:class:`~chain.consensus.store.BlockStore` (and what the node's client service reads:
checkpoint and leaf-position lookups). WAL journal; :meth:`SqliteStore.save_safety`
returns only once the state would survive a power cut (the core signs a vote only after
that).

Durability per write. One durable (``synchronous=FULL``) commit fsyncs the WAL, and with it
every transaction committed before it, so a write that need not be durable *by itself*
is written with ``NORMAL`` (no fsync; it survives a crash of the process at once, and a
power cut from the next durable commit on). Per block and validator, only the safety
state costs an fsync on the validator's event loop:

* the safety state (before every vote, timeout and proposal): FULL, always. This is the
  BFT invariant: a message is signed only after the state that allows it is on disk.
* the committed marker of a block with entries: it must be durable before the block's
  entries reach the log ("behind, never ahead"; :func:`chain.consensus.ledger.recover`
  replays a log that is behind). By default it is FULL. A node whose log writes run on
  a writer thread (:class:`chain.node.deferred_ledger.DeferredLedger`) calls
  :meth:`SqliteStore.commit_barrier` instead: markers are then written with NORMAL and
  the writer runs the barrier (:meth:`SqliteStore.sync`, an fsync of the WAL) before each
  log write, so the marker is still on disk before its entries, and the fsync leaves the
  event loop. Markers of empty blocks change no log: NORMAL (a power cut may forget a
  few trailing empty commits; they are learnt again from peers).
* blocks: NORMAL; what a power cut loses of them is learnt again from peers.
* committed checkpoint notes: NORMAL. A note is not safety state: it is 2f+1 signatures
  anyone can check, and a receipt carries its own copy. A power cut before the next
  durable commit (under load: the next vote, milliseconds later) may forget the latest
  notes; after a restart each validator signs the checkpoint of its first commit again
  (its "last signed size" starts at 0), so the latest tree size gets a note again.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from chain.consensus.blocks import Block, Limits, QuorumCert
from chain.consensus.codec import decode_block as _decode_block
from chain.consensus.codec import encode_block as _encode_block
from chain.consensus.encoding import Reader, Writer
from chain.consensus.safety import SafetyState
from chain.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS safety (id INTEGER PRIMARY KEY CHECK (id = 0), state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_height ON blocks (height);
CREATE TABLE IF NOT EXISTS committed (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    tree_size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS committed_size ON committed (tree_size, height);
CREATE TABLE IF NOT EXISTS checkpoints (tree_size INTEGER PRIMARY KEY, note TEXT NOT NULL);
"""

# Stored blocks are our own, already verified; decode them with generous limits so a
# later change of configured limits never makes the node unable to read its own chain.
_STORE_LIMITS = Limits(max_entries=1 << 24, max_block_bytes=1 << 31, max_entry_bytes=1 << 26)


def encode_safety(state: SafetyState) -> bytes:
    """The stored bytes of ``state``: u64 last voted, u64 last proposed, high QC."""
    w = Writer().u64(state.last_voted_view).u64(state.last_proposed_view)
    state.high_qc.write(w)
    return w.getvalue()


def decode_safety(data: bytes) -> SafetyState:
    """Parse :func:`encode_safety` output."""
    r = Reader(data)
    voted, proposed = r.u64(), r.u64()
    qc = QuorumCert.read(r)
    r.end()
    return SafetyState(last_voted_view=voted, last_proposed_view=proposed, high_qc=qc)


def decode_block(data: bytes) -> Block:
    """Parse a stored block (:func:`chain.consensus.codec.encode_block` bytes)."""
    return _decode_block(data, _STORE_LIMITS)


class SqliteStore:
    """SafetyStore + BlockStore in ``<directory>/consensus.sqlite``. One thread."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        block_bytes: Callable[[Block], bytes | None] | None = None,
    ) -> None:
        """Use :meth:`open`."""
        self._db = db
        self.path = path
        self._block_bytes = block_bytes
        self._head: Block | None = None
        # commit_barrier() was called: the ledger's writer makes markers durable.
        self._commit_sync_deferred = False
        self._synced_directory = False
        self._sync_lock = threading.Lock()
        # Called with the tree size after a committed checkpoint is stored (wakes waiters).
        self.on_checkpoint: Callable[[int], None] | None = None
        row = db.execute("SELECT MAX(height) FROM committed").fetchone()
        if row is not None and row[0] is not None:
            self._head = self.committed_block(int(row[0]))

    @classmethod
    def open(
        cls, directory: Path, block_bytes: Callable[[Block], bytes | None] | None = None
    ) -> SqliteStore:
        """Open (creating if missing) the store in ``directory``; raises :class:`StoreError`.

        ``block_bytes(block)``, if given, returns the block's canonical encoding when
        already at hand (a node keeps it from the proposal frame), or None: the store
        then need not encode blocks of thousands of entries a second time.
        """
        path = Path(directory) / "consensus.sqlite"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            return cls(db, path, block_bytes)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot open consensus store: {e}") from None

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _write(self, sql: str, args: tuple[object, ...], *, durable: bool = False) -> None:
        try:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute(sql, args)
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: write failed: {e}") from None

    def sync(self) -> None:
        """Make every transaction committed so far durable; callable from any thread.

        WAL mode appends each commit to the ``-wal`` file with ``write()`` (under
        ``NORMAL`` without an fsync), and a checkpoint copies it into the database and
        fsyncs that before the WAL is reused; so an fsync of the WAL file (of the
        database when there is none) makes everything committed before this call
        durable. It takes no SQLite lock and does not touch the connection, so it may
        run on another thread while the event loop goes on writing.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            with self._sync_lock:
                try:
                    fd = os.open(wal, os.O_RDONLY)
                except FileNotFoundError:
                    fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if not self._synced_directory:  # the WAL's directory entry, once
                    dir_fd = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(dir_fd)
                    finally:
                        os.close(dir_fd)
                    self._synced_directory = True
        except OSError as e:
            raise StoreError(f"{self.path}: sync failed: {e}") from None

    def commit_barrier(self) -> Callable[[], None]:
        """Leave the fsync of committed markers to the ledger's writer.

        From now on :meth:`set_committed` does not fsync; the caller must run the
        returned callable (:meth:`sync`, thread-safe) before every write of its log
        reaches the disk, which keeps the marker ahead of the entries.
        """
        self._commit_sync_deferred = True
        return self.sync

    def _encode(self, block: Block) -> bytes:
        cached = self._block_bytes(block) if self._block_bytes is not None else None
        return cached if cached is not None else _encode_block(block)

    # -- SafetyStore -----------------------------------------------------------------

    def load_safety(self) -> SafetyState | None:
        """The last saved safety state, or None on first start."""
        row = self._db.execute("SELECT state FROM safety WHERE id = 0").fetchone()
        return decode_safety(bytes(row[0])) if row else None

    def save_safety(self, state: SafetyState) -> None:
        """Save ``state``; durable (WAL fsync'd) when this returns."""
        self._write(
            "INSERT OR REPLACE INTO safety (id, state) VALUES (0, ?)",
            (encode_safety(state),),
            durable=True,
        )

    # -- BlockStore ------------------------------------------------------------------

    def put_block(self, block: Block) -> None:
        """Store a validated block (idempotent)."""
        self._write(
            "INSERT OR IGNORE INTO blocks (hash, height, data) VALUES (?, ?, ?)",
            (block.hash, block.height, self._encode(block)),
        )

    def get_block(self, block_hash: bytes) -> Block | None:
        """The stored block with ``block_hash``, or None."""
        row = self._db.execute("SELECT data FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return decode_block(bytes(row[0])) if row else None

    def set_committed(self, block: Block) -> None:
        """Record ``block`` as committed at its height (the block is stored with it).

        Durable before returning when the block has entries (the ledger append that
        follows must never get ahead of the marker), unless :meth:`commit_barrier` handed
        that fsync to the ledger's writer. An empty block changes no log, so its marker
        rides on the next fsync (a power cut may forget a few trailing empty commits;
        they are learnt again from peers), which spares an idle chain one fsync per
        block and validator.
        """
        durable = bool(block.entries) and not self._commit_sync_deferred
        try:
            stored = self._db.execute(
                "SELECT 1 FROM blocks WHERE hash = ?", (block.hash,)
            ).fetchone()
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            with self._db:
                self._db.execute("BEGIN")
                if stored is None:  # normally put_block stored it already; encoding is costly
                    self._db.execute(
                        "INSERT INTO blocks (hash, height, data) VALUES (?, ?, ?)",
                        (block.hash, block.height, self._encode(block)),
                    )
                self._db.execute(
                    "INSERT OR REPLACE INTO committed (height, hash, tree_size) VALUES (?, ?, ?)",
                    (block.height, block.hash, block.tree_size),
                )
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: commit of block {block.height} failed: {e}") from None
        if self._head is None or block.height > self._head.height:
            self._head = block

    def committed_head(self) -> Block | None:
        """The highest committed block, or None before the first commit."""
        return self._head

    def committed_block(self, height: int) -> Block | None:
        """The committed block at ``height``, or None."""
        row = self._db.execute(
            "SELECT b.data FROM committed c JOIN blocks b ON b.hash = c.hash WHERE c.height = ?",
            (height,),
        ).fetchone()
        return decode_block(bytes(row[0])) if row else None

    def blocks_above(self, height: int) -> list[Block]:
        """Stored blocks higher than ``height``, by height."""
        rows = self._db.execute(
            "SELECT data FROM blocks WHERE height > ? ORDER BY height", (height,)
        ).fetchall()
        return [decode_block(bytes(r[0])) for r in rows]

    def put_checkpoint(self, tree_size: int, note: str) -> None:
        """Store a committed checkpoint note (no fsync of its own: see the module notes)."""
        self._write(
            "INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?, ?)",
            (tree_size, note),
        )
        if self.on_checkpoint is not None:
            self.on_checkpoint(tree_size)

    def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The committed checkpoint of ``tree_size`` (None: the largest), or None."""
        if tree_size is None:
            row = self._db.execute(
                "SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT note FROM checkpoints WHERE tree_size = ?", (tree_size,)
            ).fetchone()
        return str(row[0]) if row else None

    def checkpoint_at_or_above(self, tree_size: int) -> str | None:
        """The smallest committed checkpoint whose size is at least ``tree_size``."""
        row = self._db.execute(
            "SELECT note FROM checkpoints WHERE tree_size >= ? ORDER BY tree_size LIMIT 1",
            (tree_size,),
        ).fetchone()
        return str(row[0]) if row else None

    def committed_position(self, index: int) -> tuple[int, int] | None:
        """(height, tree size after it) of the committed block holding leaf ``index``,
        or None; read from the committed table alone (no block is decoded)."""
        row = self._db.execute(
            "SELECT height, tree_size FROM committed WHERE tree_size > ? "
            "ORDER BY tree_size, height LIMIT 1",
            (index,),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None
