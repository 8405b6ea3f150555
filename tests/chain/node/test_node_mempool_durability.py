"""An entry acknowledged by a submission survives the crash of the validator that took
it: the validator hands a copy to the other validators and answers only once f+1 of them
hold it. Real processes over HTTP; the crash is a SIGKILL right after the answer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import Cluster, build_cluster

from chain.consensus.committee import Committee
from chain.node.client import LedgerClient
from chain.node.wire import encode_batch


def _entries(tag: str, n: int) -> list[bytes]:
    return [os.urandom(32) + f'{{"t":"{tag}","i":{i}}}'.encode().ljust(100) for i in range(n)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = build_cluster(tmp_path / "c", observer=False)
    for node in c.nodes:
        node.start()
    try:
        yield c
    finally:
        for node in c.nodes:
            node.stop()


async def test_acknowledged_entry_survives_the_crash_of_the_validator_that_took_it(
    cluster: Cluster,
) -> None:
    await cluster.wait_up(cluster.nodes)
    async with LedgerClient(cluster.urls()) as client:  # everyone in step, chain idle
        warm = await client.submit(_entries("warm-up", 1))
        await client.wait_committed(warm.entry_hashes[0], timeout=30)
    status = await cluster.status(cluster.validators[0])
    assert status is not None
    view, committee = status["view"], Committee(cluster.trust)
    # The taker leads none of the next three views: alone with the entry, it would not
    # propose it before its death, and it dies at once.
    taker = cluster.validators[committee.leader(view + 3)]
    assert taker.name not in {committee.name(committee.leader(view + k)) for k in range(3)}
    async with LedgerClient([taker.url], busy_retries=0) as tc:
        r = await tc.submit(_entries("survivor", 3))
    taker.kill9()
    others = [v.url for v in cluster.validators if v is not taker]
    async with LedgerClient(others) as oc:
        for h in r.entry_hashes:
            info = await oc.wait_committed(h, timeout=30)
            assert info.leaf_index >= 1
        latest = await oc.latest_checkpoint()
        assert latest is not None


async def test_submission_is_refused_busy_when_too_few_validators_can_hold_a_copy(
    cluster: Cluster,
) -> None:
    await cluster.wait_up(cluster.nodes)
    for v in cluster.validators[2:]:
        v.kill9()  # n = 4 needs f + 1 = 2 other holders; only one is left
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            cluster.validators[0].url + "/v1/entries",
            data=encode_batch(_entries("alone", 2)),
            headers={"Content-Type": "application/octet-stream"},
        ) as resp,
    ):
        body = await resp.json(content_type=None)
        assert resp.status == 503 and body["code"] == "busy", body
        assert "1 of the 2 other validators" in body["detail"]
        assert "Retry-After" in resp.headers
