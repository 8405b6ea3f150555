"""A running service with ``[auth] mode = "tokens"`` and a token per role, for the access,
custody and verify tests. Real sockets, real database (SQLite or PostgreSQL), real ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from notary.server import Notary, running
from notary.tokens import create_token
from tests.notary.test_service_e2e import migrate, settings_for

# name -> (org, role)
PEOPLE = {
    "alice": ("bank-a", "submitter"),  # uploads for bank A
    "bob": ("bank-b", "submitter"),  # another bank
    "rita": ("exchange", "reviewer"),  # reviews what is shared with the exchange
    "carl": ("court-1", "court"),
    "audrey": ("audit-co", "auditor"),
    "root": ("operator", "admin"),
}


class Caller:
    """One person's HTTP calls against the service."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str | None) -> None:
        self.http, self.url = http, url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def request(
        self, method: str, path: str, **kw: Any
    ) -> tuple[int, bytes, aiohttp.ClientResponse]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with self.http.request(method, f"{self.url}{path}", headers=headers, **kw) as r:
            return r.status, await r.read(), r

    async def json(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        status, body, _ = await self.request(method, path, **kw)
        return status, json.loads(body) if body else None

    async def upload(self, data: bytes, **params: str) -> tuple[int, Any]:
        return await self.json("POST", "/v1/documents", params=params, data=data)


class Service:
    """The running service and a Caller per person of PEOPLE (plus ``anonymous``)."""

    def __init__(self, notary: Notary, url: str, callers: dict[str, Caller]) -> None:
        self.notary, self.url, self.callers = notary, url, callers

    def __getattr__(self, name: str) -> Caller:
        try:
            return self.callers[name]
        except KeyError:
            raise AttributeError(name) from None


@asynccontextmanager
async def token_service(tmp: Path, database_url: str, **env: str) -> AsyncIterator[Service]:
    """The service in token mode, with a live token for everyone in PEOPLE."""
    await migrate(database_url)
    settings = settings_for(tmp, database_url, NOTARY_AUTH_MODE="tokens", **env)
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        callers = {"anonymous": Caller(http, url, None)}
        for name, (org, role) in PEOPLE.items():
            token = await create_token(notary.service.sessions, org=org, role=role, name=name)
            callers[name] = Caller(http, url, token)
        yield Service(notary, url, callers)
