"""API bearer tokens: created, listed and revoked by an operator, checked on every request.

A token is ``ntk_`` followed by 32 random bytes in URL-safe base64 (43 characters). The
index keeps only its SHA-256 (hex), never the token, which is shown once at creation.
A request's token is hashed and looked up by that hash; the stored hash is then
compared in constant time. Revoked tokens stay in the index (for the record) and no
longer authenticate.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notary import errors
from notary.access import NAME, ORG, Principal, Role
from notary.index.models import ApiToken

TOKEN_PREFIX = "ntk_"  # noqa: S105 (a prefix, not a secret)
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 256

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def new_token(random_token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + random_token(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: everything but the token."""

    name: str
    org: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.name, row.org, row.role, row.created_at, row.revoked_at)


def _validate(org: str, role: str, name: str) -> None:
    problems = []
    if not ORG.fullmatch(org):
        problems.append("org: 1-128 letters, digits and ._-")
    if role not in {r.value for r in Role}:
        problems.append(f"role: one of {', '.join(r.value for r in Role)}")
    if not NAME.fullmatch(name):
        problems.append("name: 1-128 letters, digits and ._@-")
    if problems:
        raise errors.InvalidRequestError("invalid token: " + "; ".join(problems))


async def create_token(
    sessions: async_sessionmaker[AsyncSession],
    *,
    org: str,
    role: str,
    name: str,
    clock: Clock = _now,
    random_token: Callable[[int], str] = secrets.token_urlsafe,
) -> str:
    """Record a new token for ``org`` with ``role`` under the unique ``name``; return it.

    The returned token is not stored anywhere: the caller must hand it over now.
    """
    _validate(org, role, name)
    token = new_token(random_token)
    try:
        async with sessions.begin() as s:
            s.add(
                ApiToken(
                    name=name,
                    org=org,
                    role=role,
                    token_sha256=token_sha256(token),
                    created_at=clock(),
                )
            )
    except IntegrityError:
        raise errors.InvalidRequestError(f"a token named {name!r} exists already") from None
    return token


async def list_tokens(sessions: async_sessionmaker[AsyncSession]) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    async with sessions() as s:
        rows = (await s.execute(select(ApiToken).order_by(ApiToken.id))).scalars()
        return [_info(r) for r in rows]


async def revoke_token(
    sessions: async_sessionmaker[AsyncSession], name: str, clock: Clock = _now
) -> TokenInfo:
    """Revoke the token ``name`` (at once, for every replica); NotFoundError if unknown."""
    async with sessions.begin() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise errors.NotFoundError(f"no token named {name!r}")
        if row.revoked_at is None:
            await s.execute(
                update(ApiToken).where(ApiToken.id == row.id).values(revoked_at=clock())
            )
            await s.refresh(row)
        return _info(row)


async def authenticate(sessions: async_sessionmaker[AsyncSession], token: str) -> Principal | None:
    """The principal of a live token, or None for an unknown or revoked one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    digest = token_sha256(token)
    async with sessions() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
    # The lookup found the row by hash; compare again in constant time so that no code
    # path decides on a token by an early-exit comparison.
    if row is None or not hmac.compare_digest(row.token_sha256, digest):
        return None
    if row.revoked_at is not None:
        return None
    return Principal(org=row.org, role=row.role, name=row.name)
