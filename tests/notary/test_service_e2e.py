"""The service end to end over real sockets: folder storage nodes, embedded validators,
SQLite and PostgreSQL. Every failure is injected for real (folders removed, bytes flipped)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from chain.trust import TrustFile
from notary.config import Settings, load_settings
from notary.index.db import create_engine, upgrade
from notary.index.models import Document
from notary.ledger_process import ProcessChain
from notary.receipt import parse_receipt
from notary.server import Notary, running
from notary.verify import DocumentDigest, verify_receipt
from tests.notary.stored import node_keys


def settings_for(tmp: Path, database_url: str, **env: str) -> Settings:
    base = {
        "NOTARY_DATA_DIR": str(tmp / "var"),
        "NOTARY_SERVER_PORT": "0",
        "NOTARY_DATABASE_URL": database_url,
        "NOTARY_STORAGE_SEGMENT_SIZE": str(64 * 1024),
    }
    return load_settings(env={**base, **env})


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class Api:
    def __init__(self, notary: Notary, url: str, session: aiohttp.ClientSession) -> None:
        self.notary, self.url, self.http = notary, url, session

    async def upload(self, data: bytes, **params: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        async with self.http.post(f"{self.url}/v1/documents", params=params, data=data) as r:
            return r.status, await r.json()

    async def get(self, path: str, **kw: object) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.http.get(f"{self.url}{path}", **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.read(), r


@pytest.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    await migrate(database_url)
    settings = settings_for(tmp_path, database_url)
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        yield Api(notary, url, http)


async def test_upload_anchor_receipt_verify_retrieve(api: Api) -> None:
    doc = os.urandom(300_000)
    status, body = await api.upload(doc, kind="filing", title="Q3 10-Q", wait="true")
    assert status == 201, body
    assert body["document"]["status"] == "anchored"
    assert body["document"]["sha256"] == hashlib.sha256(doc).hexdigest()
    receipt = json.dumps(body["receipt"])
    trust = TrustFile.load(api.notary.trust_path)
    verdict = verify_receipt(DocumentDigest(hashlib.sha256(doc).digest(), len(doc)), receipt, trust)
    assert verdict.valid, verdict.checks
    assert "title" not in body["receipt"]["entry"] and "Q3" not in body["receipt"]["entry"]

    doc_id = body["document"]["id"]
    status, content, _ = await api.get(f"/v1/documents/{doc_id}/content")
    assert status == 200 and content == doc
    status, part, resp = await api.get(
        f"/v1/documents/{doc_id}/content", headers={"Range": "bytes=100000-100099"}
    )
    assert status == 206 and part == doc[100000:100100]
    assert resp.headers["Content-Range"] == f"bytes 100000-100099/{len(doc)}"
    status, part, _ = await api.get(
        f"/v1/documents/{doc_id}/content", headers={"Range": "bytes=-5"}
    )
    assert status == 206 and part == doc[-5:]
    status, problem, _ = await api.get(
        f"/v1/documents/{doc_id}/content", headers={"Range": f"bytes={len(doc)}-"}
    )
    assert status == 416 and json.loads(problem)["code"] == "range_not_satisfiable"

    # A refreshed receipt against a later checkpoint verifies too, and the log only grew.
    await api.upload(b"a later filing", kind="filing", wait="true")
    status, later, _ = await api.get(f"/v1/documents/{doc_id}/receipt")
    later_receipt = json.loads(later)
    assert later_receipt["tree_size"] > body["receipt"]["tree_size"]
    assert verify_receipt(DocumentDigest(hashlib.sha256(doc).digest()), later, trust).valid
    old, new = body["receipt"]["tree_size"], later_receipt["tree_size"]
    status, proof, _ = await api.get(f"/v1/proofs/consistency?from={old}&to={new}")
    assert status == 200 and json.loads(proof)["from"] == old


async def test_retrieval_with_two_storage_nodes_gone(api: Api, tmp_path: Path) -> None:
    doc = os.urandom(500_000)
    status, body = await api.upload(doc, kind="disclosure")
    assert status == 202 and body["status"] in ("anchoring", "anchored")
    manifest = json.loads(await _manifest_json(api, body["id"]))
    used = sorted({f["node"] for s in manifest["segments"] for f in s["fragments"]})
    for node in used[:2]:
        shutil.rmtree(tmp_path / "var" / "nodes" / node)
    status, content, _ = await api.get(f"/v1/documents/{body['id']}/content")
    assert status == 200 and content == doc


async def _manifest_json(api: Api, doc_id: str) -> str:
    async with async_sessionmaker(api.notary.engine)() as s:
        row = await s.get(Document, doc_id)
        assert row is not None and row.manifest is not None
        return row.manifest


async def test_multipart_upload_and_version_chain(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("kind", "dd_draft")
    form.add_field("title", "Due diligence, draft 1")
    form.add_field("file", b"draft one", filename="dd.txt", content_type="text/plain")
    async with api.http.post(f"{api.url}/v1/documents", data=form) as r:
        first = await r.json()
        assert r.status == 202, first
    assert (first["filename"], first["media_type"], first["version"]) == ("dd.txt", "text/plain", 1)
    status, second = await api.upload(b"draft two", kind="dd_draft", supersedes=first["id"])
    assert status == 202 and second["version"] == 2
    status, again = await api.upload(b"draft two bis", kind="dd_draft", supersedes=first["id"])
    assert status == 409 and again["code"] == "already_superseded"
    status, raw, _ = await api.get(f"/v1/documents/{second['id']}/versions")
    assert [v["id"] for v in json.loads(raw)["versions"]] == [first["id"], second["id"]]


async def _rows(api: Api) -> int:
    async with async_sessionmaker(api.notary.engine)() as s:
        return int((await s.execute(select(func.count()).select_from(Document))).scalar_one())


async def test_digest_mismatch_stores_nothing(api: Api, tmp_path: Path) -> None:
    before = (await _rows(api), node_keys(tmp_path / "var" / "nodes"))
    status, problem = await api.upload(b"the real bytes", kind="filing", sha256="ab" * 32)
    assert status == 422 and problem["code"] == "sha256_mismatch"
    assert (await _rows(api), node_keys(tmp_path / "var" / "nodes")) == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "memo"}, "kind"),
        ({}, "kind"),
        ({"kind": "filing", "supersedes": "xyz"}, "supersedes"),
        ({"kind": "filing", "sha256": "12"}, "sha256"),
        ({"kind": "filing", "colour": "red"}, "colour"),
        ({"kind": "filing", "filename": "../etc/passwd"}, "filename"),
    ],
)
async def test_bad_metadata_is_422_naming_the_field(api: Api, params: dict, field: str) -> None:  # type: ignore[type-arg]
    status, problem = await api.upload(b"x", **params)
    assert status == 422 and problem["code"] == "invalid_metadata"
    assert field in {e["field"] for e in problem["errors"]}


async def test_unknown_documents_and_bad_queries(api: Api) -> None:
    for path in ("/v1/documents/" + "0" * 32, "/v1/documents/zzz/receipt"):
        status, raw, _ = await api.get(path)
        assert status == 404 and json.loads(raw)["code"] == "document_not_found"
    status, raw, _ = await api.get("/v1/proofs/consistency?from=x&to=2")
    assert status == 400 and json.loads(raw)["code"] == "bad_request"


async def test_body_over_the_limit_is_413_streamed(tmp_path: Path, sqlite_url: str) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url, NOTARY_LIMITS_MAX_UPLOAD_BYTES="100000")
    async with running(settings) as (_, url), aiohttp.ClientSession() as http:

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            for _ in range(10):
                yield os.urandom(50_000)

        async with http.post(f"{url}/v1/documents?kind=filing", data=chunks()) as r:
            assert r.status == 413 and (await r.json())["code"] == "payload_too_large"
        async with http.post(f"{url}/v1/documents?kind=filing", data=b"x" * 100_001) as r:
            assert r.status == 413
        assert node_keys(tmp_path / "var" / "nodes") == []


async def test_acknowledged_upload_is_anchored_after_a_restart(
    tmp_path: Path, sqlite_url: str
) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url)
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        await notary.worker.stop()  # the service dies before anchoring anything
        async with http.post(f"{url}/v1/documents?kind=broker_log", data=b"fills 09:30") as r:
            body = await r.json()
            assert r.status == 202 and body["status"] == "anchoring"
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        view = await notary.service.wait_anchored(_admin(), body["id"], timeout=30)
        assert view.status == "anchored" and view.leaf_index is not None
        async with http.get(f"{url}/v1/documents/{body['id']}/receipt") as r:
            assert r.status == 200


async def test_uploads_get_receipts_when_the_validators_process_is_killed_while_anchoring(
    tmp_path: Path, sqlite_url: str
) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url)
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        chain = notary.ledger
        assert isinstance(chain, ProcessChain)
        killed = chain.pid
        assert killed is not None
        bodies = [b"order book snapshot %d" % i for i in range(20)]

        async def upload(body: bytes) -> dict:  # type: ignore[type-arg]
            params = {"kind": "broker_log", "wait": "true", "timeout": "60"}
            async with http.post(f"{url}/v1/documents", params=params, data=body) as r:
                assert r.status == 201, await r.text()
                return await r.json()  # type: ignore[no-any-return]

        uploads = [asyncio.ensure_future(upload(b)) for b in bodies]
        # A batch submitted, its commit awaited: kill now.
        await _until(lambda: bool(notary.worker._tasks and chain._calls), interval=0.001)
        os.kill(killed, signal.SIGKILL)
        answers = await asyncio.gather(*uploads)
        assert chain.pid not in (None, killed)  # restarted
        trust = TrustFile.load(notary.trust_path)
        for body, answer in zip(bodies, answers, strict=True):
            digest = DocumentDigest(hashlib.sha256(body).digest())
            verdict = verify_receipt(digest, parse_receipt(json.dumps(answer["receipt"])), trust)
            assert verdict.valid, verdict


async def _until(condition: Callable[[], bool], interval: float = 0.01) -> None:
    """Poll ``condition`` (state of a worker or a child process: no event to wait on)."""
    async with asyncio.timeout(30):
        while True:
            if condition():
                return
            await asyncio.sleep(interval)


async def _until_async(read: Callable[[], Awaitable[Any]], want: Any) -> None:
    """Poll ``read()`` (the index) until it returns ``want`` (or ``want(value)`` holds)."""
    async with asyncio.timeout(30):
        while True:
            got = await read()
            if want(got) if callable(want) else got == want:
                return
            await asyncio.sleep(0.01)


async def _statuses(notary: Notary) -> list[str]:
    async with notary.service.sessions() as s:
        return list((await s.execute(select(Document.status))).scalars().all())


async def _row_status(notary: Notary, doc_id: str) -> str | None:
    async with notary.service.sessions() as s:
        row = await s.get(Document, doc_id)
        return None if row is None else row.status


async def test_an_upload_answers_before_its_anchored_record_and_reads_agree(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The receipt is sent once the entry is signed and the row durably says anchoring;
    the row's own "anchored" write lands after (held here), and reads meanwhile say what
    the upload said. A failed record write is retried until it lands."""
    await migrate(sqlite_url)
    async with running(settings_for(tmp_path, sqlite_url)) as (notary, url):
        writer = notary.service.writer
        original = writer.update
        release, held, failures = asyncio.Event(), [], [1]

        async def update(model, key, values):  # type: ignore[no-untyped-def]
            if values.get("status") == "anchored":
                held.append(key)
                await release.wait()
                if failures:  # the database refuses the first record: it must come again
                    failures.pop()
                    raise OSError("index write failed (injected)")
            await original(model, key, values)

        writer.update = update  # type: ignore[method-assign]
        async with aiohttp.ClientSession() as http:
            api = Api(notary, url, http)
            status, body = await api.upload(b"allotment notice", kind="filing", wait="true")
            assert status == 201, body
            doc_id = body["document"]["id"]
            assert held == [doc_id] and not release.is_set()
            assert await _row_status(notary, doc_id) == "anchoring"  # not recorded yet
            status, seen, _ = await api.get(f"/v1/documents/{doc_id}")
            view = json.loads(seen)
            assert status == 200 and view["status"] == "anchored"
            assert view["leaf_index"] == body["receipt"]["leaf_index"]
            status, versions, _ = await api.get(f"/v1/documents/{doc_id}/versions")
            assert [v["status"] for v in json.loads(versions)["versions"]] == ["anchored"]
            status, receipt, _ = await api.get(f"/v1/documents/{doc_id}/receipt")
            assert status == 200
            assert json.loads(receipt)["leaf_index"] == body["receipt"]["leaf_index"]

            release.set()  # the first record fails, the entry is resubmitted, recorded
            await _until_async(lambda: _row_status(notary, doc_id), "anchored")
            assert held == [doc_id, doc_id] and not failures
            assert notary.worker.anchored(doc_id) is None
            status, seen, _ = await api.get(f"/v1/documents/{doc_id}")
            assert json.loads(seen)["leaf_index"] == body["receipt"]["leaf_index"]


async def test_a_quick_upload_writes_its_row_once_a_slow_one_shows_storing(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A document stored within storing_row_after gets its row in one insert, already
    "anchoring"; one still streaming after that has a "storing" row meanwhile."""
    await migrate(sqlite_url)
    async with running(settings_for(tmp_path, sqlite_url)) as (notary, url):
        service = notary.service
        inserted: list[str] = []
        original = service.writer.insert

        async def insert(model, values):  # type: ignore[no-untyped-def]
            inserted.append(values["status"])
            await original(model, values)

        service.writer.insert = insert  # type: ignore[method-assign]
        async with aiohttp.ClientSession() as http:
            api = Api(notary, url, http)
            status, body = await api.upload(b"quick filing", kind="filing", wait="true")
            assert status == 201, body
            assert inserted == ["anchoring"]

            service.storing_row_after = 0.05
            more = asyncio.Event()

            async def slow_body():  # type: ignore[no-untyped-def]
                yield b"first half of a long disclosure, "
                await more.wait()
                yield b"and the second half"

            upload = asyncio.ensure_future(
                http.post(f"{url}/v1/documents", params={"kind": "disclosure"}, data=slow_body())
            )
            # The body is half sent: its row says so.
            await _until_async(lambda: _statuses(notary), lambda got: "storing" in got)
            assert inserted == ["anchoring", "storing"]
            more.set()
            async with await upload as r:
                assert r.status == 202, await r.text()
                doc_id = (await r.json())["id"]
            assert inserted == ["anchoring", "storing"]  # then updated, not inserted again
            assert await _row_status(notary, doc_id) in ("anchoring", "anchored")


def _admin():  # type: ignore[no-untyped-def]
    from notary.service import Principal

    return Principal(org="local", role="admin", name="test")


async def test_openapi_describes_exactly_the_routes(api: Api) -> None:
    status, raw, _ = await api.get("/openapi.json")
    spec = json.loads(raw)
    assert status == 200 and spec["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routed = set()
    for route in api.notary.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD":
            routed.add((path, route.method))
    assert described == routed
