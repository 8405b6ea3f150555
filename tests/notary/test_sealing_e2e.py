"""Sealed documents end to end over real sockets: what reaches the storage nodes is
ciphertext, what comes back is the exact plaintext, receipts are of the plaintext, and
every failure (lost key, wrong key, flipped byte, tampered parameters) is injected for
real and answered with a clear problem, never with wrong bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from notary.config import Settings, load_settings
from notary.errors import NotaryError
from notary.index.models import Document
from notary.server import running
from tests.notary.stored import StoredBlob, node_keys, stored_blobs
from tests.notary.test_service_e2e import Api, migrate, settings_for

MARKER = b"PROJECT-NIGHTJAR-MERGER-TERMS "
RECORD = 64 * 1024


def draft_bytes(size: int = 700_000) -> bytes:
    """A document full of a marker that must never be seen on a storage node."""
    body = MARKER * (size // len(MARKER))
    return body + os.urandom(size - len(body))


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``notary ARGS`` in a child process (the environment's config unset)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NOTARY_CONFIG": ""},
    )


def node_blobs(tmp: Path, doc_id: str) -> list[StoredBlob]:
    return stored_blobs(tmp / "var" / "nodes", doc_id)


async def row_manifest(api: Api, doc_id: str) -> dict:  # type: ignore[type-arg]
    async with async_sessionmaker(api.notary.engine)() as s:
        row = await s.get(Document, doc_id)
        assert row is not None and row.manifest is not None
        return json.loads(row.manifest)  # type: ignore[no-any-return]


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    await migrate(sqlite_url)
    async with (
        running(settings_for(tmp_path, sqlite_url)) as (notary, url),
        aiohttp.ClientSession() as http,
    ):
        yield Api(notary, url, http)


async def test_dd_draft_is_sealed_on_every_node_and_read_back_exactly(
    tmp_path: Path, database_url: str
) -> None:
    await migrate(database_url)
    doc = draft_bytes()
    async with (
        running(settings_for(tmp_path, database_url)) as (notary, url),
        aiohttp.ClientSession() as http,
    ):
        api = Api(notary, url, http)
        status, body = await api.upload(doc, kind="dd_draft", title="Nightjar", wait="true")
        assert status == 201, body
        sealed_id = body["document"]["id"]
        assert body["document"]["sealed"] is True
        assert body["document"]["sha256"] == hashlib.sha256(doc).hexdigest()
        assert body["document"]["size"] == len(doc)
        receipt = body["receipt"]
        # The same bytes unsealed: the marker is on the nodes (so the check below can fail).
        status, plain = await api.upload(doc, kind="filing")
        assert status == 202 and plain["sealed"] is False
        plain_blobs = node_blobs(tmp_path, plain["id"])
        assert any(MARKER in b.read() for b in plain_blobs)

        blobs = node_blobs(tmp_path, sealed_id)
        assert len({b.node for b in blobs}) == 6 and len(blobs) > 6
        for b in blobs:
            data = b.read()
            assert MARKER not in data and MARKER[:16] not in data, b
            assert hashlib.sha256(doc).hexdigest().encode() not in data, b

        manifest = await row_manifest(api, sealed_id)
        enc = manifest["encryption"]
        assert set(enc) == {
            "scheme",
            "version",
            "aead",
            "record_size",
            "plaintext_size",
            "nonce_prefix",
            "key_id",
            "key_wrap",
            "wrapped_key",
        }
        assert enc["plaintext_size"] == len(doc) and enc["record_size"] == RECORD
        assert manifest["size"] == len(doc) + 16 * -(-len(doc) // RECORD)
        assert manifest["sha256"] != hashlib.sha256(doc).hexdigest()
        # The copies on the nodes carry the parameters too (the index can be rebuilt).
        on_nodes = await notary.store.load_manifest(sealed_id)
        assert dict(on_nodes.encryption or {}) == enc

        status, content, resp = await api.get(f"/v1/documents/{sealed_id}/content")
        assert status == 200 and content == doc
        assert resp.headers["ETag"] == f'"{hashlib.sha256(doc).hexdigest()}"'
        assert resp.headers["Content-Length"] == str(len(doc))
        digest = base64.b64encode(hashlib.sha256(doc).digest()).decode()
        assert resp.headers["Repr-Digest"] == f"sha-256=:{digest}:"
        for first, last in [
            (0, 0),
            (RECORD - 1, RECORD),
            (RECORD, 2 * RECORD - 1),
            (100_000, 400_000),
            (len(doc) - 1, len(doc) - 1),
        ]:
            status, part, resp = await api.get(
                f"/v1/documents/{sealed_id}/content", headers={"Range": f"bytes={first}-{last}"}
            )
            assert status == 206 and part == doc[first : last + 1], (first, last)
            assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(doc)}"
        status, tail, _ = await api.get(
            f"/v1/documents/{sealed_id}/content", headers={"Range": "bytes=-5000"}
        )
        assert status == 206 and tail == doc[-5000:]
        status, _, _ = await api.get(
            f"/v1/documents/{sealed_id}/content", headers={"Range": f"bytes={len(doc)}-"}
        )
        assert status == 416

        # The receipt verifies offline against the original file, with the CLI.
        original = tmp_path / "nightjar.bin"
        original.write_bytes(doc)
        receipt_path = tmp_path / "receipt.json"
        receipt_path.write_text(json.dumps(receipt))
        trust = notary.trust_path
    verdict = await cli(
        "verify", str(original), "--receipt", str(receipt_path), "--trust", str(trust)
    )
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(doc[:-1] + bytes([doc[-1] ^ 1]))
    verdict = await cli(
        "verify", str(tampered), "--receipt", str(receipt_path), "--trust", str(trust)
    )
    assert verdict.returncode == 1


async def test_confidential_flag_and_kinds(api: Api) -> None:
    cases = [
        ({"kind": "filing", "confidential": "true"}, True),
        ({"kind": "transfer_agreement", "confidential": "1"}, True),
        ({"kind": "filing", "confidential": "false"}, False),
        ({"kind": "disclosure"}, False),
        ({"kind": "dd_draft", "confidential": "false"}, True),  # drafts always are
    ]
    for params, sealed in cases:
        doc = os.urandom(1000)
        status, body = await api.upload(doc, **params)
        assert status == 202 and body["sealed"] is sealed, (params, body)
        status, meta, _ = await api.get(f"/v1/documents/{body['id']}")
        assert json.loads(meta)["sealed"] is sealed
        status, content, _ = await api.get(f"/v1/documents/{body['id']}/content")
        assert status == 200 and content == doc
    status, problem = await api.upload(b"x", kind="filing", confidential="maybe")
    assert status == 422 and problem["errors"] == [
        {"field": "confidential", "reason": "true or false"}
    ]


async def test_multipart_confidential_and_empty_document(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("kind", "filing")
    form.add_field("confidential", "yes")
    form.add_field("file", b"", filename="empty.txt", content_type="text/plain")
    async with api.http.post(f"{api.url}/v1/documents", data=form) as r:
        body = await r.json()
        assert r.status == 202 and body["sealed"] is True and body["size"] == 0, body
    assert body["sha256"] == hashlib.sha256(b"").hexdigest()
    status, content, _ = await api.get(f"/v1/documents/{body['id']}/content")
    assert status == 200 and content == b""


async def test_expected_sha256_is_of_the_plaintext(api: Api, tmp_path: Path) -> None:
    doc = draft_bytes(200_000)
    before = node_keys(tmp_path / "var" / "nodes")
    status, problem = await api.upload(doc, kind="dd_draft", sha256="ab" * 32)
    assert status == 422 and problem["code"] == "sha256_mismatch", problem
    assert problem["calculated"] == hashlib.sha256(doc).hexdigest()
    assert node_keys(tmp_path / "var" / "nodes") == before
    status, body = await api.upload(doc, kind="dd_draft", sha256=hashlib.sha256(doc).hexdigest())
    assert status == 202 and body["sealed"] is True


async def test_flipped_byte_in_a_fragment_is_repaired_by_erasure_coding(
    api: Api, tmp_path: Path
) -> None:
    doc = draft_bytes(300_000)
    status, body = await api.upload(doc, kind="dd_draft")
    assert status == 202
    fragments = sorted(
        (b for b in node_blobs(tmp_path, body["id"]) if b.key.startswith("frag/")),
        key=lambda b: b.key,
    )
    for victim in fragments[:2]:  # two fragments of the first segment: k=4, m=2
        victim.flip_byte(victim.size // 2)
    status, content, _ = await api.get(f"/v1/documents/{body['id']}/content")
    assert status == 200 and content == doc


async def test_tampered_sealing_parameters_are_refused_never_served(api: Api) -> None:
    doc = draft_bytes(200_000)
    status, body = await api.upload(doc, kind="dd_draft")
    assert status == 202
    manifest = await row_manifest(api, body["id"])
    manifest["encryption"]["nonce_prefix"] = "00" * 7
    async with async_sessionmaker(api.notary.engine)() as s, s.begin():
        await s.execute(
            update(Document)
            .where(Document.id == body["id"])
            .values(manifest=json.dumps(manifest, separators=(",", ":")))
        )
    for headers in ({}, {"Range": "bytes=150000-150010"}):
        status, raw, _ = await api.get(f"/v1/documents/{body['id']}/content", headers=headers)
        problem = json.loads(raw)
        assert status == 503 and problem["code"] == "storage_unavailable", problem
        assert problem["reason"] == "record_auth" and "authentication" in problem["detail"]
        assert MARKER not in raw


def _with_key(settings: Settings, key: str) -> Settings:
    return settings.model_copy(
        update={"sealing": settings.sealing.model_copy(update={"master_key": SecretStr(key)})}
    )


async def test_restart_reuses_the_key_and_a_lost_key_is_a_clear_503(
    tmp_path: Path, sqlite_url: str
) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url)
    doc = draft_bytes(150_000)
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        status, body = await Api(notary, url, http).upload(doc, kind="dd_draft")
        assert status == 202
    key_file = tmp_path / "var" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text()
    doc_id = body["id"]

    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        status, content, _ = await Api(notary, url, http).get(f"/v1/documents/{doc_id}/content")
        assert status == 200 and content == doc
    assert key_file.read_text() == key_text  # reused, not replaced

    other = base64.b64encode(os.urandom(32)).decode()
    wrong = load_settings(
        env={
            "NOTARY_DATA_DIR": str(tmp_path / "var"),
            "NOTARY_SERVER_PORT": "0",
            "NOTARY_DATABASE_URL": sqlite_url,
            "NOTARY_STORAGE_SEGMENT_SIZE": str(64 * 1024),
            "NOTARY_SEALING_MASTER_KEY": other,
        }
    )
    async with running(wrong) as (notary, url), aiohttp.ClientSession() as http:
        api = Api(notary, url, http)
        status, raw, _ = await api.get(f"/v1/documents/{doc_id}")
        assert status == 200 and json.loads(raw)["sealed"] is True  # metadata still readable
        status, raw, _ = await api.get(f"/v1/documents/{doc_id}/content")
        problem = json.loads(raw)
        assert status == 503 and problem["code"] == "sealing_key_unavailable", problem
        assert problem["reason"] == "unknown_key"
        manifest = await row_manifest(api, doc_id)
        assert manifest["encryption"]["key_id"] in problem["detail"]
        assert other not in raw.decode() and key_text.strip().splitlines()[-1] not in raw.decode()
        assert MARKER not in raw

    # The right key material under an operator-chosen id it was not sealed with: unknown;
    # the id it was sealed with over other material: the wrap does not open.
    key_id = await _key_id(tmp_path, sqlite_url, doc_id)
    impostor = _with_key(settings, f"{key_id}:{other}")
    async with running(impostor) as (notary, url), aiohttp.ClientSession() as http:
        status, raw, _ = await Api(notary, url, http).get(f"/v1/documents/{doc_id}/content")
        problem = json.loads(raw)
        assert status == 503 and problem["reason"] == "unwrap_failed", problem
        assert other not in raw.decode()

    # Rotation: the old key kept, a new one added last; old documents open, new ones
    # are sealed with the new key.
    old = key_text.strip().splitlines()[-1]
    rotated = _with_key(settings, f"{old},{other}")
    async with running(rotated) as (notary, url), aiohttp.ClientSession() as http:
        api = Api(notary, url, http)
        status, content, _ = await api.get(f"/v1/documents/{doc_id}/content")
        assert status == 200 and content == doc
        status, fresh = await api.upload(b"after rotation", kind="dd_draft")
        assert status == 202
        manifest = await row_manifest(api, fresh["id"])
        assert manifest["encryption"]["key_id"] != key_id


async def _key_id(tmp_path: Path, url: str, doc_id: str) -> str:
    from notary.index.db import create_engine

    engine = create_engine(url)
    try:
        async with async_sessionmaker(engine)() as s:
            row = await s.get(Document, doc_id)
            assert row is not None and row.manifest is not None
            return str(json.loads(row.manifest)["encryption"]["key_id"])
    finally:
        await engine.dispose()


def _production(tmp: Path, url: str, extra: str = "") -> Path:
    nodes = "\n".join(
        f'[[storage.nodes]]\nkind = "local"\nname = "n{i}"\npath = "{tmp / "nodes" / f"n{i}"}"\n'
        f'zone = "z{i}"\n'
        for i in range(6)
    )
    config = tmp / "notary.toml"
    config.write_text(
        f'data_dir = "{tmp / "var"}"\n[server]\nport = 0\n[database]\nurl = "{url}"\n'
        f"{extra}\n{nodes}"
    )
    return config


async def test_production_without_keys_refuses_confidential_uploads(
    tmp_path: Path, sqlite_url: str
) -> None:
    await migrate(sqlite_url)
    settings = load_settings(_production(tmp_path, sqlite_url), env={})
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        api = Api(notary, url, http)
        status, problem = await api.upload(b"secret draft", kind="dd_draft")
        assert status == 503 and problem["code"] == "sealing_key_unavailable", problem
        assert "master_key_file" in problem["detail"]
        status, body = await api.upload(b"public filing", kind="filing")
        assert status == 202 and body["sealed"] is False
    assert not (tmp_path / "var" / "master.key").exists()
    assert not [
        p for p in (tmp_path / "nodes").rglob("*") if p.is_file() and b"secret" in p.read_bytes()
    ]


async def test_key_file_readable_by_others_refuses_to_start(
    tmp_path: Path, sqlite_url: str
) -> None:
    await migrate(sqlite_url)
    key_file = tmp_path / "keys"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key_file.chmod(0o644)
    config = _production(tmp_path, sqlite_url, f'[sealing]\nmaster_key_file = "{key_file}"\n')
    with pytest.raises(NotaryError) as info:
        async with running(load_settings(config, env={})):
            pass
    assert "sealing.master_key_file" in info.value.detail and "0600" in info.value.detail
    assert key_file.read_text().strip() not in info.value.detail
    # Through the CLI: one line on stderr, a non-zero exit, no traceback.
    out = await cli("serve", "--config", str(config))
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "0600" in lines[0] and "Traceback" not in out.stderr, out.stderr

    key_file.chmod(0o600)
    async with running(load_settings(config, env={})) as (notary, _):
        assert notary.service.sealing.keyring is not None
