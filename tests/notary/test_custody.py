"""Chain of custody: every content read is a custody event, anchored in the ledger, whose
proof verifies offline with chain/ functions alone. Real sockets, real ledger, SQLite and
PostgreSQL; tampering is done for real on the proof's bytes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import rfc8785

from chain.checkpoint import verify_checkpoint
from chain.merkle import leaf_hash, verify_inclusion
from chain.trust import TrustFile
from notary.custody import (
    CustodyEvent,
    CustodyFormatError,
    CustodyProofError,
    parse_event,
    parse_proof,
    verify_custody_proof,
)
from notary.entry import (
    EntryError,
    custody_commitment,
    custody_entry,
    parse_custody_entry,
    parse_document_entry,
)
from notary.server import running
from notary.verify import DocumentDigest, verify_receipt
from tests.notary.auth_service import Caller, Service, token_service
from tests.notary.receipt_factory import signers, trust_for
from tests.notary.test_service_e2e import migrate, settings_for

DOC = bytes(range(256)) * 40


@pytest.fixture
async def svc(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    async with token_service(tmp_path, database_url) as service:
        yield service


async def _anchored_custody(caller: Caller, doc_id: str, count: int) -> list[dict[str, Any]]:
    """Poll the custody log until ``count`` events are anchored with proofs."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        status, body = await caller.json("GET", f"/v1/documents/{doc_id}/custody")
        assert status == 200, body
        events = body["events"]
        if len(events) == count and all(e["proof"] is not None for e in events):
            return list(events)
        assert len(events) <= count, events
        assert asyncio.get_running_loop().time() < deadline, f"not anchored: {events}"
        await asyncio.sleep(0.05)


async def test_every_content_read_is_an_anchored_custody_event(svc: Service) -> None:
    status, body = await svc.alice.upload(DOC, kind="filing", title="Q3", wait="true")
    assert status == 201, body
    doc_id, receipt = body["document"]["id"], body["receipt"]
    base = f"/v1/documents/{doc_id}"

    status, full, _ = await svc.alice.request("GET", base + "/content")
    assert status == 200 and full == DOC
    status, part, _ = await svc.alice.request(
        "GET", base + "/content", headers={"Range": "bytes=5-9"}
    )
    assert status == 206 and part == DOC[5:10]
    status, _, _ = await svc.alice.request(
        "GET", base + "/content", headers={"Range": f"bytes={len(DOC)}-"}
    )
    assert status == 416  # nothing served, nothing recorded
    status, _, _ = await svc.root.request("GET", base + "/content")
    assert status == 200

    events = await _anchored_custody(svc.alice, doc_id, 3)
    assert [(e["actor"]["name"], e["range"]["start"], e["range"]["end"]) for e in events] == [
        ("alice", 0, len(DOC)),
        ("alice", 5, 10),
        ("root", 0, len(DOC)),
    ]
    assert events[0]["actor"] == {"name": "alice", "org": "bank-a", "role": "submitter"}
    assert all(e["status"] == "anchored" and e["action"] == "read" for e in events)
    # The auditor reads the same log; the owner's reviewer-less org has no one else.
    status, audited = await svc.audrey.json("GET", base + "/custody")
    assert status == 200 and [e["id"] for e in audited["events"]] == [e["id"] for e in events]

    trust = TrustFile.load(svc.notary.trust_path)
    document_leaf = leaf_hash(receipt["entry"].encode())
    for e in events:
        proof = e["proof"]
        event, entry = proof["event"].encode(), proof["entry"].encode()
        # Offline, with chain/ functions only: the checkpoint is committed by the trust
        # file's validators and the custody entry is in the log it commits to ...
        checkpoint = verify_checkpoint(proof["checkpoint"], trust)
        assert checkpoint.checkpoint.size == proof["tree_size"]
        verify_inclusion(
            proof["leaf_index"],
            proof["tree_size"],
            leaf_hash(entry),
            [base64.b64decode(h) for h in proof["inclusion_proof"]],
            checkpoint.checkpoint.root,
        )
        # ... the entry commits to this event under the salt, and names the document's
        # own anchored entry; the event's bytes are canonical JSON.
        parsed = parse_custody_entry(entry)
        assert parsed.commitment == custody_commitment(bytes.fromhex(proof["salt"]), event)
        assert parsed.document == document_leaf
        assert rfc8785.dumps(json.loads(event)) == event
        record = json.loads(event)
        assert record["document"]["sha256"] == hashlib.sha256(DOC).hexdigest()
        assert (record["actor"], record["range"]) == (e["actor"], e["range"])
        # The public entry reveals nothing of who, what or when.
        for secret in ("alice", "root", "bank-a", doc_id, record["document"]["sha256"]):
            assert secret not in proof["entry"]
        # And the library's verifier agrees.
        proven = verify_custody_proof(parse_proof(proof), trust, document_entry_hash=document_leaf)
        assert proven.actor_name == e["actor"]["name"]

    # The document's own receipt still verifies, and a custody entry is no document entry.
    digest = DocumentDigest(hashlib.sha256(DOC).digest(), len(DOC))
    assert verify_receipt(digest, json.dumps(receipt), trust).valid
    forged = dict(receipt, entry=events[0]["proof"]["entry"])
    verdict = verify_receipt(digest, json.dumps(forged), trust)
    assert not verdict.valid and verdict.failures()[0].name == "entry"


async def test_tampered_custody_proofs_fail_for_the_right_reason(svc: Service) -> None:
    status, body = await svc.alice.upload(b"contract", kind="transfer_agreement", wait="true")
    assert status == 201
    doc_id = body["document"]["id"]
    other_leaf = hashlib.sha256(b"some other document entry").digest()
    assert (await svc.alice.request("GET", f"/v1/documents/{doc_id}/content"))[0] == 200
    (event,) = await _anchored_custody(svc.alice, doc_id, 1)
    good = parse_proof(event["proof"])
    trust = TrustFile.load(svc.notary.trust_path)
    verify_custody_proof(good, trust)

    record = json.loads(good.event)
    record["actor"]["name"] = "mallory"
    flipped = bytearray(good.inclusion_proof[0]) if good.inclusion_proof else None
    cases: list[tuple[Any, str]] = [
        (dataclasses.replace(good, event=rfc8785.dumps(record)), "commitment"),
        (dataclasses.replace(good, salt=bytes(32)), "commitment"),
        (dataclasses.replace(good, entry=good.entry.replace(b'"v":1', b'"v":2')), "entry"),
        (dataclasses.replace(good, event=good.event + b" "), "event"),
        (dataclasses.replace(good, chain_id="another/chain"), "chain_id"),
        (dataclasses.replace(good, tree_size=good.tree_size + 1), "checkpoint"),
        (dataclasses.replace(good, leaf_index=(good.leaf_index + 1) % good.tree_size), "inclusion"),
    ]
    if flipped is not None:
        flipped[0] ^= 1
        cases.append(
            (
                dataclasses.replace(
                    good, inclusion_proof=(bytes(flipped), *good.inclusion_proof[1:])
                ),
                "inclusion",
            )
        )
    for proof, check in cases:
        with pytest.raises(CustodyProofError) as e:
            verify_custody_proof(proof, trust)
        assert e.value.check == check, (check, e.value)
    with pytest.raises(CustodyProofError) as e:
        verify_custody_proof(good, trust, document_entry_hash=other_leaf)
    assert e.value.check == "document"
    # Validators the court does not trust do not make a checkpoint committed.
    with pytest.raises(CustodyProofError) as e:
        verify_custody_proof(good, trust_for(signers(), trust.chain_id))
    assert e.value.check == "checkpoint"


async def test_recorded_reads_are_anchored_after_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    await migrate(sqlite_url)
    settings = settings_for(tmp_path, sqlite_url)  # mode none: the local admin reads
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/documents?kind=filing&wait=true", data=b"exhibit A") as r:
            doc_id = (await r.json())["document"]["id"]
        await notary.worker.stop()  # the service dies before anchoring the read
        async with http.get(f"{url}/v1/documents/{doc_id}/content") as r:
            assert r.status == 200 and await r.read() == b"exhibit A"
        assert [i for i, _ in await notary.service.pending_custody()] != []
    async with running(settings) as (notary, url), aiohttp.ClientSession() as http:
        events = await _anchored_custody(Caller(http, url, None), doc_id, 1)
        assert events[0]["actor"] == {"name": "local", "org": "local", "role": "admin"}
        assert await notary.service.pending_custody() == []
        verify_custody_proof(parse_proof(events[0]["proof"]), TrustFile.load(notary.trust_path))


# ---------------------------------------------------------------- the formats, offline

EVENT = CustodyEvent(
    document_id="ab" * 16,
    document_sha256="11" * 32,
    document_entry_hash="22" * 32,
    actor_name="carl",
    actor_org="court-1",
    actor_role="court",
    action="read",
    case_ref="CV-2026-001",
    start=0,
    end=9,
    at="2026-11-21T10:00:00.000000Z",
)


def test_event_bytes_are_canonical_and_parse_back() -> None:
    data = EVENT.to_bytes()
    assert data == rfc8785.dumps(json.loads(data))
    assert data.startswith(b'{"action":"read","actor":{"name":"carl"')
    assert parse_event(data) == EVENT


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(extra=1),
        lambda o: o.update(action="delete"),
        lambda o: o.update(v=2),
        lambda o: o["range"].update(start=10),
        lambda o: o.update(at="yesterday"),
        lambda o: o["document"].update(sha256="XY" * 32),
        lambda o: o["actor"].pop("org"),
    ],
)
def test_malformed_events_are_rejected(mutate: Any) -> None:
    obj = json.loads(EVENT.to_bytes())
    mutate(obj)
    with pytest.raises(CustodyFormatError):
        parse_event(rfc8785.dumps(obj))


def test_noncanonical_event_is_rejected() -> None:
    with pytest.raises(CustodyFormatError):
        parse_event(json.dumps(json.loads(EVENT.to_bytes()), indent=1).encode())


def test_custody_entry_format() -> None:
    salt = bytes(range(32))
    event = EVENT.to_bytes()
    entry = custody_entry(salt, event, bytes.fromhex(EVENT.document_entry_hash))
    want = hashlib.sha256(b"notary/custody/v1" + salt + hashlib.sha256(event).digest()).digest()
    assert entry.to_bytes() == (
        b'{"commitment":"'
        + want.hex().encode()
        + b'","document":"'
        + b"22" * 32
        + b'","type":"custody","v":1}'
    )
    assert parse_custody_entry(entry.to_bytes()) == entry
    # The worked example of docs/custody.md.
    assert hashlib.sha256(event).hexdigest() == (
        "a05a2efe5ed23ea6cfd3ed45f374e062b432dce2db157a08906b3c4e11f0d830"
    )
    assert entry.commitment.hex() == (
        "16aef3f93b0b31cdd90ac89d6d3fe0cfa18a48e98363e9103989e2e84f68f0fd"
    )
    with pytest.raises(EntryError):
        parse_document_entry(entry.to_bytes())
    with pytest.raises(EntryError):
        parse_custody_entry(entry.to_bytes().replace(b'"v":1', b'"v":1,"who":"carl"'))
    with pytest.raises(EntryError):
        custody_entry(b"short", event, bytes(32))
