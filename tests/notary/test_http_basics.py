"""The HTTP layer's basics over a real localhost socket (aiohttp's test server)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from notary.http.app import create_app


async def _ok() -> str:
    return "fine"


async def _broken() -> str:
    raise ConnectionRefusedError("database refused the connection")


async def _hangs() -> str:
    await asyncio.Event().wait()
    return "never"


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app({"storage": _ok, "database": _ok})
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_healthz_and_readyz(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/healthz")
    assert r.status == 200 and (await r.json()) == {"status": "ok"}
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200, body
    assert body["checks"]["storage"] == {"ok": True, "detail": "fine"}


async def test_readyz_reports_each_failing_check() -> None:
    app = create_app({"storage": _ok, "database": _broken})
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/readyz")
        body = await r.json()
    assert r.status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert "refused" in body["checks"]["database"]["detail"]
    assert body["checks"]["storage"]["ok"] is True


async def test_readyz_times_out_a_hanging_check() -> None:
    from notary.http import health

    result = await health.run_check("chain", _hangs, limit=0.05)
    assert not result.ok and "no answer" in result.detail


async def test_unknown_route_and_method_are_problem_details(
    client: TestClient[web.Request, web.Application],
) -> None:
    r = await client.get("/v1/nope")
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["code"] == "not_found" and body["status"] == 404
    r = await client.post("/healthz")
    assert r.status == 405
    assert (await r.json())["code"] == "method_not_allowed"
