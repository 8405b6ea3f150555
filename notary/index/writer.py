"""Group commit for the index: small writes of concurrent requests share one transaction.

A commit costs an fsync (SQLite with ``synchronous=FULL``; PostgreSQL likewise), and every
upload writes its row three times (``storing``, ``anchoring``, ``anchored``): at hundreds
of uploads per second, one transaction per write is the bottleneck. The writer queues
writes; one flusher commits everything queued in one transaction and then wakes the
writers. A write returns only once the transaction holding it has committed, so it is as
durable as with a commit of its own. Writes queued while a commit runs form the next
batch: the batch grows with the load, and an idle writer adds no delay.

Within a batch, rows of one table written with the same columns go in one ``executemany``
statement (inserts; updates by primary key). If the batch fails (one row breaks a
constraint, say), it is rolled back and each write is retried in a transaction of its own,
so a bad write fails alone, with its own error, and the others still land.

On SQLite (aiosqlite) the whole transaction runs in one trip to the thread that owns the
connection (:class:`_OneTrip`). Through SQLAlchemy's async adapter every cursor, statement,
commit and reset is a trip of its own (seven or eight per transaction), and each trip
waits for a turn of the event loop to come back: under load, milliseconds each, so a
commit took ~20 ms, and every write waited for about one and a half of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, StaticPool, Table, bindparam, create_engine, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert, Update

from notary.index.db import CLEAN_KEY
from notary.index.models import Base

# Statement shape: (kind, table name, sorted column names).
_Shape = tuple[str, str, tuple[str, ...]]


@dataclass
class _Write:
    kind: str  # "insert" or "update"
    table: Table
    values: dict[str, Any]
    key: Any = None  # primary key of the row an update targets
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def shape(self) -> _Shape:
        return (self.kind, self.table.name, tuple(sorted(self.values)))

    def params(self) -> dict[str, Any]:
        if self.kind == "insert":
            return self.values
        return {"k_id": self.key, **{f"v_{c}": v for c, v in self.values.items()}}


class IndexWriter:
    """Queues inserts and updates by primary key and commits them in shared transactions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_batch: int = 1000):
        """``max_batch``: most writes per transaction (bounds a transaction's size)."""
        self._sessions = sessions
        self._one_trip = _OneTrip.of(sessions.kw.get("bind"))
        self._max_batch = max_batch
        self._queue: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self._statements: dict[_Shape, Insert | Update] = {}
        self.commits = 0  # transactions committed (for tests and benchmarks)

    async def insert(self, model: type[Base], values: Mapping[str, Any]) -> None:
        """Insert one row of ``model`` (column name -> value); returns once committed.

        Raises what the database raised for this row (e.g. IntegrityError).
        """
        await self._submit(_Write("insert", _table(model), dict(values)))

    async def update(self, model: type[Base], key: Any, values: Mapping[str, Any]) -> None:
        """Set ``values`` on the row of ``model`` whose ``id`` is ``key``; returns once
        committed (a missing row is not an error: nothing is updated)."""
        await self._submit(_Write("update", _table(model), dict(values), key))

    async def close(self) -> None:
        """Wait for the writes already queued to be committed (or to fail)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)

    async def _submit(self, write: _Write) -> None:
        self._queue.append(write)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await write.done

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: len(batch)]
            batch = [w for w in batch if not w.done.done()]  # drop cancelled writers
            if batch:
                await self._flush_batch(batch)

    async def _flush_batch(self, batch: list[_Write]) -> None:
        committed = False

        def on_committed() -> None:
            nonlocal committed
            committed = True
            for w in batch:
                _resolve(w)

        try:
            await self._commit(batch, on_committed)
        except Exception:
            if committed:  # only handing the connection back failed: the writes are in
                return
            # Isolate the culprit: each write alone, with its own outcome.
            for w in batch:
                try:
                    await self._commit([w])
                except Exception as e:
                    if not w.done.done():
                        w.done.set_exception(e)
                else:
                    _resolve(w)

    async def _commit(
        self, batch: list[_Write], on_committed: Callable[[], object] | None = None
    ) -> None:
        """Commit ``batch`` in one transaction; ``on_committed`` is called as soon as it is
        (before the connection goes back to the pool)."""
        groups: dict[_Shape, list[_Write]] = {}
        for w in batch:
            groups.setdefault(w.shape, []).append(w)
        statements = [
            (self._statement(shape, writes[0].table), [w.params() for w in writes])
            for shape, writes in groups.items()
        ]

        def committed() -> None:
            self.commits += 1
            if on_committed is not None:
                on_committed()

        if self._one_trip is not None:
            await self._one_trip.run(statements, committed)
        else:
            async with self._sessions.begin() as s:
                conn = await s.connection()
                for statement, params in statements:
                    await conn.execute(statement, params)
            committed()

    def _statement(self, shape: _Shape, table: Table) -> Insert | Update:
        stmt = self._statements.get(shape)
        if stmt is None:
            kind, _, columns = shape
            if kind == "insert":
                stmt = insert(table)
            else:
                stmt = (
                    update(table)
                    .where(table.c.id == bindparam("k_id"))
                    .values({c: bindparam(f"v_{c}") for c in columns})
                )
            self._statements[shape] = stmt
        return stmt


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _resolve(w: _Write) -> None:
    if not w.done.done():
        w.done.set_result(None)


_Statements = list[tuple[Insert | Update, list[dict[str, Any]]]]


class _OneTrip:
    """Runs a transaction on an aiosqlite connection in one trip to its thread.

    The pool's (single) connection is checked out, so nothing else uses it meanwhile;
    on its thread, a synchronous SQLAlchemy engine over that very ``sqlite3`` connection
    executes the statements (with SQLAlchemy's own type handling, as the async engine
    would) and commits, or rolls back and raises.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: tuple[object, Engine] | None = None  # (sqlite3 connection, engine over it)

    @classmethod
    def of(cls, bind: object) -> _OneTrip | None:
        """The fast path for ``bind`` if it is an aiosqlite engine, else None."""
        if isinstance(bind, AsyncEngine) and bind.dialect.driver == "aiosqlite":
            return cls(bind)
        return None

    async def run(self, statements: _Statements, committed: Callable[[], None]) -> None:
        """Execute and commit ``statements``; call ``committed`` once that is done. The
        connection goes back marked clean, so the pool does not roll it back (a trip)."""
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            # aiosqlite runs ``fn`` on the connection's thread (its own execute does the same).
            await driver._execute(self._run, driver._conn, statements)  # type: ignore[union-attr]
            raw.info[CLEAN_KEY] = True  # committed: no rollback on return (notary.index.db)
            committed()

    def _run(self, dbapi: object, statements: _Statements) -> None:
        if self._sync is None or self._sync[0] is not dbapi:  # a new connection: new engine
            engine = create_engine("sqlite://", creator=lambda: dbapi, poolclass=StaticPool)
            self._sync = (dbapi, engine)
        with self._sync[1].begin() as conn:
            for statement, params in statements:
                conn.execute(statement, params)
