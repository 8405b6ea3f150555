"""Authentication and roles over real sockets, on SQLite and PostgreSQL: bearer tokens,
the five roles, sharing, case orders, and ids that never reveal others' documents."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.main import main
from notary.errors import NotaryError
from notary.http.auth import PUBLIC_PATHS
from notary.index.models import ApiToken
from notary.server import running
from notary.tokens import authenticate, create_token, revoke_token
from tests.notary.auth_service import Caller, Service, token_service
from tests.notary.test_service_e2e import migrate, settings_for


@pytest.fixture
async def svc(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    async with token_service(tmp_path, database_url) as service:
        yield service


async def _anchored(caller: Caller, data: bytes, **params: str) -> str:
    status, body = await caller.upload(data, kind="filing", wait="true", **params)
    assert status == 201, body
    return str(body["document"]["id"])


def _concrete(path: str) -> str:
    return path.replace("{doc_id}", "0" * 32).replace("{name}", "desk-1").replace("{seq}", "0")


async def test_every_private_route_needs_a_live_token(svc: Service) -> None:
    private = [
        (route.method, route.resource.canonical)
        for route in svc.notary.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and route.resource.canonical not in PUBLIC_PATHS
    ]
    assert ("GET", "/v1/documents/{doc_id}/content") in private
    assert ("POST", "/v1/documents") in private
    for method, path in private:
        status, body, r = await svc.anonymous.request(method, _concrete(path), data=b"x")
        assert status == 401, (method, path, body)
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="notary"')
        assert r.content_type == "application/problem+json"

    doc = "/v1/documents/" + "0" * 32
    for header in ("Bearer ntk_" + "A" * 43, "Bearer not-even-a-token", "Basic YWxpY2U6cHc="):
        status, body, r = await svc.anonymous.request("GET", doc, headers={"Authorization": header})
        assert status == 401, header
        if header.startswith("Bearer"):
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

    # The OpenAPI document says the same: exactly the public routes need no token.
    status, spec = await svc.anonymous.json("GET", "/openapi.json")
    assert status == 200 and spec["security"] == [{"bearer": []}]
    open_paths = {
        path
        for path, ops in spec["paths"].items()
        for op in ops.values()
        if op.get("security") == []
    }
    assert open_paths == PUBLIC_PATHS

    # Public routes answer without a token (whatever their own answer is).
    for path in ("/healthz", "/openapi.json", "/v1/checkpoints/latest", "/readyz"):
        status, _, _ = await svc.anonymous.request("GET", path)
        assert status not in (401, 403), path


async def test_a_revoked_token_stops_working_at_once(svc: Service) -> None:
    sessions = svc.notary.service.sessions
    token = await create_token(sessions, org="bank-a", role="submitter", name="temp")
    temp = Caller(svc.alice.http, svc.url, token)
    status, body = await temp.upload(b"before revocation", kind="filing")
    assert status == 202, body
    await revoke_token(sessions, "temp")
    status, problem = await temp.json("GET", f"/v1/documents/{body['id']}")
    assert status == 401 and problem["code"] == "unauthorized"
    # Only the hash is stored.
    async with sessions() as s:
        stored = list((await s.execute(select(ApiToken.token_sha256))).scalars())
    assert token not in stored and all(len(h) == 64 for h in stored)


async def test_roles_and_other_organisations(svc: Service) -> None:
    doc = await _anchored(svc.alice, b"bank A's Q3 filing")
    base = f"/v1/documents/{doc}"
    for caller in (svc.bob, svc.rita, svc.carl):  # never told the document exists
        for path in ("", "/content", "/receipt", "/versions", "/custody", "/shares"):
            status, problem = await caller.json("GET", base + path)
            assert status == 404 and problem["code"] == "document_not_found", (path, problem)
    status, problem = await svc.bob.upload(b"hijack", kind="filing", supersedes=doc)
    assert status == 404 and problem["code"] == "document_not_found"
    status, problem = await svc.bob.json("POST", base + "/shares", json={"org": "bank-b"})
    assert status == 404

    # Roles that may not upload or record case orders.
    for caller in (svc.rita, svc.carl, svc.audrey):
        status, problem = await caller.upload(b"not mine to upload", kind="filing")
        assert status == 403 and problem["code"] == "forbidden"
    order = {"case_ref": "CV-1", "court_org": "court-1", "documents": [doc]}
    for caller in (svc.alice, svc.rita, svc.carl, svc.audrey):
        status, problem = await caller.json("POST", "/v1/case-orders", json=order)
        assert status == 403 and problem["code"] == "forbidden"

    # An auditor sees metadata and custody of every document, never content.
    status, meta = await svc.audrey.json("GET", base)
    assert status == 200 and meta["id"] == doc
    status, problem = await svc.audrey.json("GET", base + "/content")
    assert status == 403 and problem["code"] == "forbidden"
    status, custody = await svc.audrey.json("GET", base + "/custody")
    assert status == 200 and custody["events"] == []  # the refused read left no event

    # The owner and the admin read it.
    for caller in (svc.alice, svc.root):
        status, content, _ = await caller.request("GET", base + "/content")
        assert status == 200 and content == b"bank A's Q3 filing"


async def test_sharing_a_version_chain_with_a_reviewer(svc: Service) -> None:
    v1 = await _anchored(svc.alice, b"transfer agreement v1")
    status, problem = await svc.rita.json("GET", f"/v1/documents/{v1}")
    assert status == 404

    status, share = await svc.alice.json(
        "POST", f"/v1/documents/{v1}/shares", json={"org": "exchange"}
    )
    assert status == 201 and share["org"] == "exchange" and share["created_by"] == "alice"
    status, again = await svc.alice.json(
        "POST", f"/v1/documents/{v1}/shares", json={"org": "exchange"}
    )
    assert status == 200 and again["created_at"] == share["created_at"]
    status, problem = await svc.alice.json(
        "POST", f"/v1/documents/{v1}/shares", json={"org": "bank-a"}
    )
    assert status == 422 and problem["code"] == "invalid_request"
    status, problem = await svc.alice.json(
        "POST", f"/v1/documents/{v1}/shares", json={"org": "../etc"}
    )
    assert status == 422

    status, content, _ = await svc.rita.request("GET", f"/v1/documents/{v1}/content")
    assert status == 200 and content == b"transfer agreement v1"
    # A later version of a shared chain is shared too.
    v2 = await _anchored(svc.alice, b"transfer agreement v2", supersedes=v1)
    status, versions = await svc.rita.json("GET", f"/v1/documents/{v2}/versions")
    assert status == 200 and [v["id"] for v in versions["versions"]] == [v1, v2]
    status, receipt = await svc.rita.json("GET", f"/v1/documents/{v2}/receipt")
    assert status == 200 and receipt["format"] == "notary-receipt"

    # The reviewer may read, not share; another bank still sees nothing.
    status, problem = await svc.rita.json(
        "POST", f"/v1/documents/{v1}/shares", json={"org": "bank-b"}
    )
    assert status == 403 and problem["code"] == "forbidden"
    status, _ = await svc.bob.json("GET", f"/v1/documents/{v2}")
    assert status == 404
    # The same share made concurrently is made once.
    answers = await asyncio.gather(
        *(
            svc.alice.json("POST", f"/v1/documents/{v2}/shares", json={"org": "regulator"})
            for _ in range(5)
        )
    )
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 201]
    status, listed = await svc.alice.json("GET", f"/v1/documents/{v2}/shares")
    assert status == 200 and [s["org"] for s in listed["shares"]] == ["exchange", "regulator"]


async def test_a_court_reads_only_under_a_recorded_case_order(svc: Service) -> None:
    d1 = await _anchored(svc.alice, b"evidence one")
    d2 = await _anchored(svc.alice, b"evidence two")
    content = f"/v1/documents/{d1}/content"
    status, problem = await svc.carl.json("GET", content + "?case=CV-2026-001")
    assert status == 404 and problem["code"] == "document_not_found"

    order = {"case_ref": "CV-2026-001", "court_org": "court-1", "documents": [d1]}
    status, recorded = await svc.root.json("POST", "/v1/case-orders", json=order)
    assert status == 201 and recorded["documents"] == [d1], recorded
    status, problem = await svc.root.json("POST", "/v1/case-orders", json=order)
    assert status == 409 and problem["code"] == "case_order_exists"
    bad = {"case_ref": "CV-2", "court_org": "court-1", "documents": ["f" * 32]}
    status, problem = await svc.root.json("POST", "/v1/case-orders", json=bad)
    assert status == 422 and problem["missing"] == ["f" * 32]

    status, _ = await svc.carl.json("GET", f"/v1/documents/{d1}")
    assert status == 200
    status, problem = await svc.carl.json("GET", content)
    assert status == 403 and "case" in problem["detail"]
    status, problem = await svc.carl.json("GET", content + "?case=CV-2026-999")
    assert status == 404 and problem["code"] == "case_order_not_found"
    status, body, _ = await svc.carl.request("GET", content + "?case=CV-2026-001")
    assert status == 200 and body == b"evidence one"
    status, problem = await svc.carl.json("GET", f"/v1/documents/{d2}/content?case=CV-2026-001")
    assert status == 404  # not named by the order: not visible at all

    # Another court sees nothing of it.
    other = await create_token(
        svc.notary.service.sessions, org="court-2", role="court", name="dora"
    )
    dora = Caller(svc.carl.http, svc.url, other)
    status, _ = await dora.json("GET", content + "?case=CV-2026-001")
    assert status == 404
    status, listed = await dora.json("GET", "/v1/case-orders")
    assert status == 200 and listed["case_orders"] == []
    status, listed = await svc.carl.json("GET", "/v1/case-orders")
    assert [o["case_ref"] for o in listed["case_orders"]] == ["CV-2026-001"]

    # The read is on record, with the case it was made under.
    status, custody = await svc.alice.json("GET", f"/v1/documents/{d1}/custody")
    assert status == 200
    assert [(e["actor"]["name"], e["case_ref"]) for e in custody["events"]] == [
        ("carl", "CV-2026-001")
    ]


async def test_no_authentication_is_refused_off_loopback(tmp_path: Path, sqlite_url: str) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url, NOTARY_SERVER_HOST="0.0.0.0")
    with pytest.raises(NotaryError) as e:
        async with running(settings):
            pass
    assert "auth.mode" in e.value.detail and "\n" not in e.value.detail


def test_serve_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTARY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NOTARY_SERVER_HOST", "0.0.0.0")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("notary: invalid setting auth.mode") and "\n" not in err


def test_token_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in [v for v in os.environ if v.startswith("NOTARY_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTARY_DATA_DIR", str(tmp_path / "var"))
    assert main(["token", "list"]) == 3  # not migrated: says how to migrate
    assert "notary db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()

    assert main(["token", "create", "--org", "bank-a", "--role", "submitter", "--name", "a1"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("ntk_") and len(token) >= 4 + 43 and "shown only now" in out.err
    assert main(["token", "create", "--org", "bank-a", "--role", "court", "--name", "a1"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["token", "create", "--org", "b", "--role", "king", "--name", "k"]) == 2
    capsys.readouterr()

    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "a1\tbank-a\tsubmitter" in listed and "active" in listed and token not in listed

    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'index.sqlite3'}"
    assert _principal(url, token) == ("bank-a", "submitter", "a1")
    assert main(["token", "revoke", "a1"]) == 0
    assert main(["token", "revoke", "nobody"]) == 2
    capsys.readouterr()
    assert _principal(url, token) is None
    assert main(["token", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


def _principal(url: str, token: str) -> tuple[str, str, str] | None:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from notary.index.db import create_engine

    async def run() -> tuple[str, str, str] | None:
        engine = create_engine(url)
        try:
            who = await authenticate(async_sessionmaker(engine), token)
        finally:
            await engine.dispose()
        return None if who is None else (who.org, who.role, who.name)

    return asyncio.run(run())
