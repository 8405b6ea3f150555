"""Database engine, migrations (Alembic) and the check that the schema is current."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from notary.errors import NotaryError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class SchemaNotCurrentError(NotaryError):
    """The database schema is not at the migration head."""

    code, title = "schema_not_current", "Database not migrated"


def alembic_config() -> Config:
    """Alembic's configuration pointing at the packaged migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Key of a pooled SQLite connection's info: set by a user who committed everything on it
# (nothing is left to roll back) just before handing it back.
CLEAN_KEY = "notary.clean"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``.

    For SQLite: creates the parent folder, enables WAL with full fsync, and uses one
    connection for everything. SQLite has a single writer anyway, and with several
    connections a read transaction that later writes fails at once with "database is
    locked" whenever another connection committed in between (no busy timeout helps);
    one connection serializes transactions in the pool instead, without errors.
    """
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if sqlite:
        # The rollback on return is done by _reset below (skipped after a clean commit).
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=120, pool_reset_on_return=None
        )
    else:
        engine = create_async_engine(url, pool_pre_ping=True)
    if sqlite:
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine.sync_engine, "reset")
        def _reset(dbapi_conn, record, state):  # type: ignore[no-untyped-def]
            # The pool's rollback on return, except for a connection handed back by one
            # who just committed on it and said so (CLEAN_KEY): through aiosqlite every
            # rollback is a trip to the connection's thread, which under load takes
            # milliseconds, and the index writer's one-trip commits are many.
            clean = record.info.pop(CLEAN_KEY, False)
            if state.asyncio_safe and not state.transaction_was_reset and not clean:
                dbapi_conn.rollback()

    return engine


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def _migrate(engine: AsyncEngine, step: Callable[[Config, str], None], revision: str) -> None:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        step(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: the newest)."""
    await _migrate(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base``: no tables)."""
    await _migrate(engine, command.downgrade, revision)


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise SchemaNotCurrentError, saying how to migrate, unless the schema is at head."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    head = _head()
    if current != head:
        raise SchemaNotCurrentError(
            f"database schema is at revision {current or 'none'}, the service needs {head}; "
            "run `notary db upgrade` (same configuration) to migrate"
        )
