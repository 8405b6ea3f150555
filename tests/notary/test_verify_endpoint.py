"""POST /v1/verify over real sockets, with no token (anyone may verify), on SQLite and
PostgreSQL: valid, edited file, tampered receipt, malformed receipt, bad requests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.notary.auth_service import Service, token_service

DOC = os.urandom(200_000)


@pytest.fixture
async def anchored(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Service, Any]]:
    async with token_service(tmp_path, database_url) as svc:
        status, body = await svc.alice.upload(DOC, kind="filing", wait="true")
        assert status == 201, body
        yield svc, body["receipt"]


def _form(
    receipt: Any, *, file: bytes | None = None, sha256: str | None = None
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if sha256 is not None:
        form.add_field("sha256", sha256)
    form.add_field(
        "receipt",
        receipt if isinstance(receipt, str) else json.dumps(receipt),
        content_type="application/json",
        filename="receipt.json",
    )
    if file is not None:  # after the receipt: parts are accepted in any order
        form.add_field("file", file, filename="doc.bin", content_type="application/octet-stream")
    return form


async def _verify(svc: Service, **kw: Any) -> tuple[int, Any]:
    return await svc.anonymous.json("POST", "/v1/verify", **kw)


def _checks(verdict: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in verdict["checks"]}


async def test_valid_receipt_by_file_and_by_digest(anchored: tuple[Service, Any]) -> None:
    svc, receipt = anchored
    status, verdict = await _verify(svc, data=_form(receipt, file=DOC))
    assert status == 200 and verdict["valid"] is True, verdict
    assert verdict["document"] == {"sha256": hashlib.sha256(DOC).hexdigest(), "size": len(DOC)}
    checks = _checks(verdict)
    for name in ("receipt", "chain_id", "document", "entry", "commitment", "checkpoint"):
        assert checks[name] == "pass", name
    assert checks["threshold"] == "pass" and checks["inclusion"] == "pass"
    assert sum(1 for n, o in checks.items() if n.startswith("signature:") and o == "info") >= 3

    digest = hashlib.sha256(DOC).hexdigest()
    status, verdict = await _verify(svc, json={"sha256": digest, "receipt": receipt})
    assert status == 200 and verdict["valid"] is True
    status, verdict = await _verify(svc, data=_form(receipt, sha256=digest.upper()))
    assert status == 200 and verdict["valid"] is True
    status, verdict = await _verify(
        svc, json={"sha256": digest, "size": len(DOC) + 1, "receipt": json.dumps(receipt)}
    )
    assert status == 200 and verdict["valid"] is False
    assert _checks(verdict)["document"] == "fail"


async def test_edited_file_and_tampered_receipts_are_invalid_verdicts(
    anchored: tuple[Service, Any],
) -> None:
    svc, receipt = anchored
    edited = bytearray(DOC)
    edited[100_000] ^= 1
    status, verdict = await _verify(svc, data=_form(receipt, file=bytes(edited)))
    assert status == 200 and verdict["valid"] is False
    assert _checks(verdict)["document"] == "fail"

    other_salt = dict(receipt, salt="00" * 32)
    swapped_proof = dict(receipt, inclusion_proof=list(reversed(receipt["inclusion_proof"])))
    wrong_chain = dict(receipt, chain_id="another/chain")
    unsigned = dict(receipt, checkpoint=receipt["checkpoint"].split("\n\n")[0] + "\n\n")
    cases = [
        (other_salt, "commitment"),
        (wrong_chain, "chain_id"),
        (unsigned, "checkpoint"),
    ]
    if len(receipt["inclusion_proof"]) > 1:
        cases.append((swapped_proof, "inclusion"))
    for tampered, check in cases:
        status, verdict = await _verify(svc, data=_form(tampered, file=DOC))
        assert status == 200 and verdict["valid"] is False, check
        assert _checks(verdict)[check] == "fail", (check, verdict["checks"])


@pytest.mark.parametrize(
    "receipt",
    [
        "not json at all",
        json.dumps(["a", "list"]),
        json.dumps({"format": "notary-receipt", "version": 1}),
        json.dumps({"format": "notary-receipt", "version": 99}),
    ],
)
async def test_malformed_receipt_is_422(anchored: tuple[Service, Any], receipt: str) -> None:
    svc, _ = anchored
    status, problem = await _verify(svc, data=_form(receipt, file=DOC))
    assert status == 422 and problem["code"] == "malformed_receipt", problem
    digest = hashlib.sha256(DOC).hexdigest()
    status, problem = await _verify(svc, json={"sha256": digest, "receipt": receipt})
    assert status == 422 and problem["code"] == "malformed_receipt", problem


async def test_bad_verify_requests(anchored: tuple[Service, Any]) -> None:
    svc, receipt = anchored
    digest = hashlib.sha256(DOC).hexdigest()
    status, problem = await _verify(svc, data=_form(receipt))  # neither file nor sha256
    assert status == 422 and problem["code"] == "invalid_request"
    status, problem = await _verify(svc, data=_form(receipt, file=DOC, sha256=digest))
    assert status == 422 and problem["code"] == "invalid_request"
    status, problem = await _verify(svc, json={"sha256": "12", "receipt": receipt})
    assert status == 422 and problem["field"] == "sha256"
    status, problem = await _verify(svc, json={"sha256": digest})
    assert status == 422 and problem["field"] == "receipt"
    status, problem = await _verify(svc, json={"sha256": digest, "receipt": 7})
    assert status == 422 and problem["code"] == "malformed_receipt"
    status, problem = await _verify(svc, data=b"raw bytes")
    assert status == 415 and problem["code"] == "unsupported_media_type"
    status, problem = await _verify(
        svc, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and problem["code"] == "bad_request"
    form = _form(receipt, file=DOC)
    form.add_field("colour", "red")
    status, problem = await _verify(svc, data=form)
    assert status == 422 and problem["field"] == "colour"


async def test_file_over_the_limit_is_413(tmp_path: Path, sqlite_url: str) -> None:
    async with token_service(tmp_path, sqlite_url, NOTARY_LIMITS_MAX_UPLOAD_BYTES="1000") as svc:
        status, problem = await _verify(svc, data=_form({}, file=b"x" * 5000))
        assert status == 413 and problem["code"] == "payload_too_large"
