"""The durable store of a real validator: SQLite with ``synchronous=FULL``.

One file holds the safety state, blocks, the committed chain and committed checkpoints.
Every write is its own transaction and SQLite fsyncs it before ``commit`` returns
(WAL with ``synchronous=FULL``), so :meth:`SqliteStore.save_safety` is durable by the
time the core signs the vote, timeout or proposal it guards.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chain.consensus.blocks import Block, Limits, QuorumCert
from chain.consensus.codec import decode_block, encode_block
from chain.consensus.encoding import Reader, Writer
from chain.consensus.safety import SafetyState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS safety (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_voted_view INTEGER NOT NULL,
    last_proposed_view INTEGER NOT NULL,
    high_qc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    hash BLOB PRIMARY KEY, height INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_height ON blocks (height);
CREATE TABLE IF NOT EXISTS committed (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (tree_size INTEGER PRIMARY KEY, note TEXT NOT NULL);
"""


class SqliteStore:
    """A :class:`~chain.consensus.safety.SafetyStore` and
    :class:`~chain.consensus.store.BlockStore` in one SQLite file."""

    def __init__(self, path: Path, limits: Limits | None = None) -> None:
        """Open (creating if missing) the store at ``path``."""
        self.path = path
        self._limits = limits or Limits()
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._db:  # BEGIN ... COMMIT; the commit is fsync'd (synchronous=FULL)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(sql, args)

    def load_safety(self) -> SafetyState | None:
        """The stored safety state, or None on first start."""
        row = self._db.execute(
            "SELECT last_voted_view, last_proposed_view, high_qc FROM safety WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        r = Reader(row[2])
        qc = QuorumCert.read(r)
        r.end()
        return SafetyState(last_voted_view=row[0], last_proposed_view=row[1], high_qc=qc)

    def save_safety(self, state: SafetyState) -> None:
        """Store ``state``; durable when this returns."""
        w = Writer()
        state.high_qc.write(w)
        self._write(
            "INSERT OR REPLACE INTO safety VALUES (1, ?, ?, ?)",
            (state.last_voted_view, state.last_proposed_view, w.getvalue()),
        )

    def put_block(self, block: Block) -> None:
        """Store a block (idempotent)."""
        self._write(
            "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)",
            (block.hash, block.height, encode_block(block)),
        )

    def get_block(self, block_hash: bytes) -> Block | None:
        """The stored block with ``block_hash``."""
        row = self._db.execute("SELECT data FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else decode_block(row[0], self._limits)

    def set_committed(self, block: Block) -> None:
        """Record ``block`` as committed at its height (storing it if needed)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)",
                (block.hash, block.height, encode_block(block)),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO committed VALUES (?, ?)", (block.height, block.hash)
            )

    def committed_head(self) -> Block | None:
        """The highest committed block."""
        row = self._db.execute("SELECT MAX(height) FROM committed").fetchone()
        return None if row is None or row[0] is None else self.committed_block(int(row[0]))

    def committed_block(self, height: int) -> Block | None:
        """The committed block at ``height``."""
        row = self._db.execute(
            "SELECT b.data FROM committed c JOIN blocks b ON b.hash = c.hash WHERE c.height = ?",
            (height,),
        ).fetchone()
        return None if row is None else decode_block(row[0], self._limits)

    def blocks_above(self, height: int) -> list[Block]:
        """Stored blocks above ``height``, by height."""
        rows = self._db.execute(
            "SELECT data FROM blocks WHERE height > ? ORDER BY height", (height,)
        ).fetchall()
        return [decode_block(row[0], self._limits) for row in rows]

    def put_checkpoint(self, tree_size: int, note: str) -> None:
        """Store a committed checkpoint note."""
        self._write("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (tree_size, note))

    def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The checkpoint of ``tree_size`` (None: the largest)."""
        if tree_size is None:
            row = self._db.execute(
                "SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT note FROM checkpoints WHERE tree_size = ?", (tree_size,)
            ).fetchone()
        return None if row is None else str(row[0])
