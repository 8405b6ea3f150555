"""``notary token create|list|revoke``: API bearer tokens, managed on the service's database.

Like ``notary db upgrade``, these work directly on the configured database (same
``--config`` / ``NOTARY_*`` settings as ``notary serve``), so only an operator with
access to it can mint tokens. A token is printed once, at creation; the database keeps
only its SHA-256. Revocation takes effect at once on every replica.

Exit codes: 0 done; 2 bad arguments (unknown role, duplicate or unknown name);
3 the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from notary.config import ConfigError, load_settings

_T = TypeVar("_T")
ROLES = ("admin", "submitter", "reviewer", "court", "auditor")

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML configuration file (default: $NOTARY_CONFIG, else the embedded default).",
)


def _run(config_path: Path | None, op: Callable[..., Awaitable[_T]]) -> _T:
    """Run ``op(sessions)`` against the configured, migrated database."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from notary.errors import InvalidRequestError, NotaryError, NotFoundError
    from notary.index.db import create_engine, ensure_current

    try:
        settings = load_settings(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None

    async def run() -> _T:
        engine = create_engine(settings.database_url())
        try:
            await ensure_current(engine)
            return await op(async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (InvalidRequestError, NotFoundError) as e:
        raise click.ClickException(e.detail) from None
    except NotaryError as e:
        click.echo(f"notary: {e.detail}", err=True)
        raise click.exceptions.Exit(3) from None
    except (OSError, ConnectionError) as e:
        click.echo(f"notary: database unreachable: {e}", err=True)
        raise click.exceptions.Exit(3) from None
    except Exception as e:  # SQLAlchemy's driver errors: name the failure, not a traceback
        if type(e).__module__.startswith(("sqlalchemy", "asyncpg", "sqlite3", "aiosqlite")):
            click.echo(f"notary: database error: {e}", err=True)
            raise click.exceptions.Exit(3) from None
        raise


@click.group("token")
def token() -> None:
    """API bearer tokens (for [auth] mode = "tokens")."""


@token.command("create")
@click.option("--org", required=True, help="Organisation the token acts for.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="Its role.")
@click.option("--name", required=True, help="Unique name (shown in custody records).")
@_CONFIG
def create(org: str, role: str, name: str, config_path: Path | None) -> None:
    """Create a token and print it once (it is not stored, only its SHA-256)."""
    from notary.tokens import create_token

    secret = _run(config_path, lambda s: create_token(s, org=org, role=role, name=name))
    click.echo(secret)
    click.echo(f"token {name!r} ({role} of {org}) created; it is shown only now", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_CONFIG
def list_(as_json: bool, config_path: Path | None) -> None:
    """List tokens (name, org, role, created, revoked); never the tokens themselves."""
    from notary.tokens import list_tokens

    rows = _run(config_path, list_tokens)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "org": t.org,
                        "role": t.role,
                        "created_at": t.created_at.isoformat(),
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                    }
                    for t in rows
                ],
                indent=1,
            )
        )
        return
    for t in rows:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        click.echo(f"{t.name}\t{t.org}\t{t.role}\t{t.created_at:%Y-%m-%d %H:%M}\t{state}")


@token.command("revoke")
@click.argument("name")
@_CONFIG
def revoke(name: str, config_path: Path | None) -> None:
    """Revoke the token NAME at once."""
    from notary.tokens import revoke_token

    info = _run(config_path, lambda s: revoke_token(s, name))
    click.echo(f"token {info.name!r} revoked", err=True)
