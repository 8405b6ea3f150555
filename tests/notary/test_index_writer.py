"""The index's group committer on SQLite and PostgreSQL: writes of concurrent callers
share transactions, each caller returns only once its write is committed, and a bad
write fails alone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notary.index.db import create_engine, upgrade
from notary.index.models import Document
from notary.index.writer import IndexWriter


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def _row(doc_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "org": "bank-a",
        "kind": "filing",
        "title": None,
        "filename": None,
        "media_type": None,
        "project": None,
        "supersedes": None,
        "chain_root": doc_id,
        "version": 1,
        "status": "storing",
        "salt": os.urandom(32),
        "created_at": datetime.now(UTC),
        **extra,
    }


async def _statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as s:
        rows = (await s.execute(select(Document.id, Document.status))).all()
    return {doc_id: status for doc_id, status in rows}


async def test_concurrent_writes_share_commits_and_are_visible_on_return(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = IndexWriter(sessions)
    ids = [f"{i:032x}" for i in range(50)]

    async def one(doc_id: str) -> None:
        await writer.insert(Document, _row(doc_id))
        # Committed when insert returns: a fresh session sees it.
        async with sessions() as s:
            assert await s.get(Document, doc_id) is not None
        await writer.update(Document, doc_id, {"status": "anchoring", "size": 7})

    await asyncio.gather(*(one(d) for d in ids))
    assert await _statuses(sessions) == dict.fromkeys(ids, "anchoring")
    # 100 writes; concurrent ones shared transactions.
    assert 1 <= writer.commits < 100


async def test_a_bad_write_fails_alone_with_its_own_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = IndexWriter(sessions)
    await writer.insert(Document, _row("a" * 32))
    results = await asyncio.gather(
        writer.insert(Document, _row("b" * 32)),
        writer.insert(Document, _row("a" * 32)),  # the same primary key again
        writer.insert(Document, _row("c" * 32)),
        writer.update(Document, "a" * 32, {"status": "anchored"}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], IntegrityError)
    assert await _statuses(sessions) == {
        "a" * 32: "anchored",
        "b" * 32: "storing",
        "c" * 32: "storing",
    }


async def test_updates_with_different_columns_in_one_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = IndexWriter(sessions)
    await asyncio.gather(*(writer.insert(Document, _row(f"{i:032x}")) for i in range(3)))
    await asyncio.gather(
        writer.update(Document, f"{0:032x}", {"status": "anchoring", "size": 1}),
        writer.update(Document, f"{1:032x}", {"status": "anchored", "leaf_index": 5}),
        writer.update(Document, f"{2:032x}", {"status": "anchoring", "size": 3}),
        writer.update(Document, "f" * 32, {"status": "anchored"}),  # no such row: no-op
    )
    async with sessions() as s:
        rows = {r.id: r for r in (await s.execute(select(Document))).scalars()}
    assert set(rows) == {f"{i:032x}" for i in range(3)}
    assert (rows[f"{0:032x}"].status, rows[f"{0:032x}"].size) == ("anchoring", 1)
    assert (rows[f"{1:032x}"].status, rows[f"{1:032x}"].leaf_index) == ("anchored", 5)
    assert rows[f"{1:032x}"].size is None
    assert (rows[f"{2:032x}"].status, rows[f"{2:032x}"].size) == ("anchoring", 3)


async def test_on_sqlite_a_transaction_is_one_trip_and_reads_back_as_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = IndexWriter(sessions)
    if sessions.kw["bind"].dialect.name != "sqlite":
        assert writer._one_trip is None  # PostgreSQL: the async engine as it is
        return
    assert writer._one_trip is not None
    created = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    salt = os.urandom(32)
    await writer.insert(Document, _row("d1", created_at=created, salt=salt))
    await writer.update(Document, "d1", {"status": "anchored", "leaf_index": 7})
    with pytest.raises(IntegrityError):  # rolled back on the connection's thread
        await writer.insert(Document, _row("d1"))
    async with sessions() as s:
        row = await s.get(Document, "d1")
    assert row is not None
    assert (row.status, row.leaf_index, row.salt) == ("anchored", 7, salt)
    assert row.created_at.replace(tzinfo=UTC) == created  # SQLAlchemy's own date format
    # The connection is usable by everything else afterwards.
    await writer.insert(Document, _row("d2"))
    assert await _statuses(sessions) == {"d1": "anchored", "d2": "storing"}


async def test_sqlite_connections_are_rolled_back_on_return_unless_committed_clean(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The pool's rollback on return is skipped only after the writer's own commits; a
    connection handed back mid-transaction is still rolled back."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL keeps the pool's own reset
    rollbacks = 0
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
    original = driver.rollback

    async def counted() -> None:
        nonlocal rollbacks
        rollbacks += 1
        await original()

    driver.rollback = counted  # the pool's single connection: every return goes here
    writer = IndexWriter(sessions)
    await asyncio.gather(*(writer.insert(Document, _row(f"w{i}")) for i in range(5)))
    assert rollbacks == 0  # committed in the trip: nothing to roll back on return

    async with engine.connect() as conn:  # left mid-transaction by its user
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(
            "INSERT INTO documents (id, org, kind, chain_root, version, status, salt, "
            "created_at) VALUES ('half', 'o', 'filing', 'half', 1, 'storing', x'00', '2026')"
        )
    assert rollbacks == 1
    assert "half" not in await _statuses(sessions)
    before = rollbacks
    await writer.insert(Document, _row("after"))  # and the connection works on
    assert rollbacks == before
    assert "after" in await _statuses(sessions)
