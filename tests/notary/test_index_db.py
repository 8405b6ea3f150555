"""Migrations on both databases: the service refuses an un-migrated schema."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from notary.index.db import (
    SchemaNotCurrentError,
    create_engine,
    downgrade,
    ensure_current,
    upgrade,
)
from notary.index.models import Document


def _doc(doc_id: str, entry_hash: str, supersedes: str | None = None) -> Document:
    return Document(
        id=doc_id,
        org="bank-a",
        kind="filing",
        title="Q3",
        supersedes=supersedes,
        chain_root=doc_id,
        version=1,
        size=3,
        sha256="00" * 32,
        status="storing",
        manifest="{}",
        salt=bytes(32),
        entry=b"{}",
        entry_hash=entry_hash,
        created_at=datetime.now(UTC),
    )


async def test_unmigrated_database_is_refused_then_migrated(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with pytest.raises(SchemaNotCurrentError, match="notary db upgrade"):
            await ensure_current(engine)
        await upgrade(engine)
        await ensure_current(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions.begin() as s:
            s.add(_doc("a", "e1"))
        async with sessions() as s:
            got = (await s.execute(select(Document))).scalar_one()
        assert got.id == "a" and got.salt == bytes(32)
        with pytest.raises(IntegrityError):
            async with sessions.begin() as s:
                s.add(_doc("b", "e1"))  # an entry is anchored for one document only
        with pytest.raises(IntegrityError):
            async with sessions.begin() as s:
                s.add(_doc("c", "e3", supersedes="nope"))  # versions link to real documents
    finally:
        await engine.dispose()


async def test_downgrade_to_base_empties_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        await downgrade(engine, "base")
        with pytest.raises(SchemaNotCurrentError):
            await ensure_current(engine)
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from notary.index.models import Base

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()
