"""Four validator processes and an observer over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sqlite3

import aiohttp
import pytest
from conftest import Cluster, wait_for

from chain.checkpoint import parse_checkpoint, verify_checkpoint
from chain.consensus.blocks import Block, QuorumCert
from chain.consensus.messages import Proposal, Vote
from chain.merkle import verify_consistency, verify_inclusion
from chain.node.client import LedgerClient
from chain.node.peer_transport import CHAIN_HEADER, PEER_HEADER, PEER_PATH
from chain.node.wire import encode_batch, encode_message
from chain.note import parse_note


def _root(note: str) -> bytes:
    return parse_checkpoint(parse_note(note).text).root


def _entries(tag: str, n: int) -> list[bytes]:
    # A 32-byte commitment plus ~100 bytes of metadata, like the notary's entries.
    return [os.urandom(32) + f'{{"t":"{tag}","i":{i}}}'.encode().ljust(100) for i in range(n)]


async def test_commit_checkpoint_and_proofs(cluster: Cluster) -> None:
    async with LedgerClient(cluster.urls()) as client:
        entries = _entries("first", 300)
        result = await client.submit(entries)
        assert result.accepted == 300
        info = await client.wait_committed(result.entry_hashes[-1], timeout=30)
        for h in result.entry_hashes[:3]:
            await client.wait_committed(h, timeout=30)
        note = await client.checkpoint(info.tree_size, timeout=30)
        verified = verify_checkpoint(note, cluster.trust)
        assert verified.checkpoint.size == info.tree_size
        assert len(verified.signers) >= 3
        # The smallest signed tree that holds leaf 0: a size that may never be signed
        # exactly is answered with the next one (or this one).
        covering = verify_checkpoint(await client.checkpoint_covering(1), cluster.trust)
        assert 1 <= covering.checkpoint.size <= info.tree_size
        proof = await client.inclusion_proof(info.tree_size, entry_hash=result.entry_hashes[42])
        verify_inclusion(
            proof.leaf_index, info.tree_size, proof.leaf_hash, proof.hashes, _root(note)
        )
        # A forged proof element must not verify against the checkpoint.
        if proof.hashes:
            bad = (bytes([proof.hashes[0][0] ^ 1]) + proof.hashes[0][1:], *proof.hashes[1:])
            with pytest.raises(Exception, match="root"):
                verify_inclusion(
                    proof.leaf_index, info.tree_size, proof.leaf_hash, bad, _root(note)
                )
        latest = await client.latest_checkpoint()
        assert latest is not None
        assert verify_checkpoint(latest, cluster.trust).checkpoint.size >= info.tree_size
        block = await client.block(info.block_height)
        assert block["tree_size"] == info.tree_size
        more = await client.submit(_entries("second", 10))
        info2 = await client.wait_committed(more.entry_hashes[-1], timeout=30)
        note2 = await client.checkpoint(info2.tree_size, timeout=30)
        cons = await client.consistency_proof(info.tree_size, info2.tree_size)
        verify_consistency(info.tree_size, info2.tree_size, _root(note), _root(note2), cons.hashes)


async def _problem(
    session: aiohttp.ClientSession, method: str, url: str, **kw: object
) -> tuple[int, dict[str, object]]:
    async with session.request(method, url, **kw) as r:  # type: ignore[arg-type]
        assert r.content_type == "application/problem+json", await r.text()
        return r.status, json.loads(await r.text())


async def test_bad_client_requests_get_problem_details(cluster: Cluster) -> None:
    url = cluster.validators[0].url
    async with aiohttp.ClientSession() as s:
        cases = [
            ("POST", "/v1/entries", {"data": b"{not json"}, 400, "bad_request"),
            ("POST", "/v1/entries", {"json": {"entries": "x"}}, 422, "invalid_entry"),
            ("POST", "/v1/entries", {"json": {"entries": ["!!"]}}, 422, "invalid_entry"),
            ("POST", "/v1/entries", {"json": {"entries": [""]}}, 422, "invalid_entry"),
            ("POST", "/v1/entries", {"json": {"entries": ["QQ=="] * 10_001}}, 413, "too_large"),
            ("GET", "/v1/entries/zz", {}, 400, "bad_request"),
            ("GET", "/v1/entries/" + "00" * 32, {}, 404, "not_committed"),
            ("GET", "/v1/blocks/999999", {}, 404, "not_found"),
            ("GET", "/v1/blocks/abc", {}, 400, "bad_request"),
            ("GET", "/v1/checkpoints/123456789", {}, 404, "no_checkpoint"),
            ("GET", "/v1/proofs/inclusion?leaf_index=0", {}, 400, "bad_request"),
            ("GET", "/v1/proofs/inclusion?leaf_index=0&tree_size=999999999", {}, 404, "not_found"),
            ("GET", "/v1/proofs/consistency?from=5&to=2", {}, 422, "invalid_entry"),
            ("GET", "/v1/nowhere", {}, 404, "not_found"),
            ("DELETE", "/v1/status", {}, 405, "method_not_allowed"),
        ]
        for method, path, kw, status, code in cases:
            got_status, body = await _problem(s, method, url + path, **kw)
            assert (got_status, body["code"]) == (status, code), (path, body)
            assert body["status"] == status and body["instance"] == path.split("?")[0]


async def test_garbage_and_forged_peer_messages_do_not_crash(cluster: Cluster) -> None:
    target = cluster.validators[1]
    before = await cluster.status(target)
    assert before is not None
    headers = {CHAIN_HEADER: cluster.trust.chain_id, PEER_HEADER: "mallory"}
    forged_vote = Vote(before["view"], os.urandom(32), 2, os.urandom(64))
    # A proposal by the right leader index, but signed by nobody's key.
    qc = QuorumCert(
        1, os.urandom(32), ((0, os.urandom(64)), (1, os.urandom(64)), (2, os.urandom(64)))
    )
    block = Block(5, 2, qc.block_hash, 2, 0, os.urandom(32), 0, os.urandom(32), qc)
    forged_proposal = Proposal(block, os.urandom(64))
    async with aiohttp.ClientSession() as s:
        url = target.url + PEER_PATH
        for body in (os.urandom(1000), b"", encode_batch([os.urandom(50)])):
            async with s.post(url, data=body, headers=headers) as r:
                assert r.status == 400
        frames = [encode_message(forged_vote), encode_message(forged_proposal)]
        async with s.post(url, data=encode_batch(frames), headers=headers) as r:
            assert r.status == 204
        async with s.post(
            url, data=encode_batch(frames), headers={**headers, CHAIN_HEADER: "other.chain"}
        ) as r:
            assert r.status == 409
    after = await cluster.status(target)
    assert after is not None and target.proc is not None and target.proc.poll() is None
    assert after["garbage_dropped"] >= before["garbage_dropped"] + 3
    # The forged proposal was rejected by signature verification, counted, not applied.
    assert after["rejected_messages"] > before["rejected_messages"]
    async with LedgerClient([target.url]) as client:
        r = await client.submit(_entries("after-garbage", 5))
        await client.wait_committed(r.entry_hashes[-1], timeout=30)


async def test_observer_follows_and_serves_proofs_but_never_votes(cluster: Cluster) -> None:
    obs = cluster.observer
    assert obs is not None
    async with LedgerClient(cluster.urls()) as client:
        r = await client.submit(_entries("observed", 20))
        info = await client.wait_committed(r.entry_hashes[-1], timeout=30)
    async with LedgerClient([obs.url]) as oc:
        info_o = await oc.wait_committed(r.entry_hashes[-1], timeout=30)
        assert (info_o.leaf_index, info_o.block_height) == (info.leaf_index, info.block_height)
        note = await oc.checkpoint(info.tree_size, timeout=30)
        verify_checkpoint(note, cluster.trust)
        proof = await oc.inclusion_proof(info.tree_size, entry_hash=r.entry_hashes[0])
        verify_inclusion(
            proof.leaf_index, info.tree_size, proof.leaf_hash, proof.hashes, _root(note)
        )
        status = await oc.status()
        assert status["role"] == "observer"
        with pytest.raises(Exception, match="observer"):
            await oc.submit([b"not here"])
    # It never persisted a vote, timeout or proposal: its safety state is empty.
    db = sqlite3.connect(cluster.root / "regulator" / "consensus.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM safety").fetchone()[0] == 0
    finally:
        db.close()


async def test_kill_9_one_validator_then_catch_up(cluster: Cluster) -> None:
    victim = cluster.validators[3]
    victim.kill9()
    alive = cluster.validators[:3]
    # The dead validator comes first: the client fails over to the live ones.
    async with LedgerClient([victim.url] + [v.url for v in alive]) as client:
        for round_ in range(3):
            r = await client.submit(_entries(f"f1-{round_}", 50))
            info = await client.wait_committed(r.entry_hashes[-1], timeout=30)
        note = await client.checkpoint(info.tree_size, timeout=30)
        verified = verify_checkpoint(note, cluster.trust)
        assert "v3" not in verified.signers
    target = max([(await cluster.status(v) or {}).get("height", 0) for v in alive])
    victim.start()
    await cluster.wait_up([victim])

    async def caught_up() -> bool:
        s = await cluster.status(victim)
        return s is not None and s["height"] >= target and s["tree_size"] >= info.tree_size

    await wait_for(caught_up, 40, lambda: cluster.describe([victim]))
    # And it votes again: the chain still commits with it (all four up).
    async with LedgerClient([victim.url]) as vc:
        r = await vc.submit(_entries("rejoined", 5))
        await vc.wait_committed(r.entry_hashes[-1], timeout=30)
