"""``notary serve`` and ``notary db upgrade``: run the service, migrate its database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import click

from notary.config import ConfigError, Settings, load_settings
from notary.errors import NotaryError

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML configuration file (default: $NOTARY_CONFIG, else the embedded default).",
)


def _settings(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@click.command("serve")
@_CONFIG
def serve(config_path: Path | None) -> None:
    """Run the notary service (embedded default: API on 127.0.0.1:8080, data under ./var)."""
    from chain.node.eventloop import run as run_loop
    from notary.server import serve as run_server

    settings = _settings(config_path)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_loop(run_server(settings, lambda line: click.echo(line, err=True)))
    except NotaryError as e:
        raise click.ClickException(e.detail) from None
    except OSError as e:
        raise click.ClickException(f"cannot start: {e.strerror or e}") from None


@click.group("db")
def db() -> None:
    """The service's database (index)."""


@db.command("upgrade")
@_CONFIG
def upgrade(config_path: Path | None) -> None:
    """Create or migrate the database schema to the newest version."""
    from notary.index.db import create_engine
    from notary.index.db import upgrade as migrate

    settings = _settings(config_path)

    async def run() -> None:
        engine = create_engine(settings.database_url())
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except Exception as e:  # a database that cannot be reached or migrated: say which
        raise click.ClickException(f"database migration failed: {e}") from None
    click.echo(f"database at the newest schema: {settings.database_url().split('@')[-1]}", err=True)
