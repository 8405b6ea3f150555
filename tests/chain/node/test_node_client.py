"""LedgerClient against a real aiohttp server over the embedded chain: busy retries,
failover, problem details mapped back to chain errors."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from chain.consensus.blocks import Limits as BlockLimits
from chain.consensus.mempool import MempoolConfig
from chain.errors import MempoolFullError
from chain.node.client import LedgerClient
from chain.node.config import Limits
from chain.node.inprocess import EmbeddedChain, start_embedded
from chain.node.results import EntryError, NotFoundError
from chain.node.server import make_app


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedChain, str]]:
    chain = await start_embedded(
        tmp_path, mempool_config=MempoolConfig(max_entries=10, batch_entries=10)
    )
    app = make_app(chain.service, limits=Limits(), block_limits=BlockLimits(), deliver=None)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield chain, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await chain.stop()


async def test_busy_is_503_with_retry_after_and_client_retries(
    served: tuple[EmbeddedChain, str],
) -> None:
    _, url = served
    distinct = [base64.b64encode(b"e%d" % i).decode() for i in range(11)]
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/entries", json={"entries": distinct}) as r,
    ):
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert (await r.json(content_type=None))["code"] == "busy"
    async with LedgerClient([url], busy_retries=0) as impatient:
        with pytest.raises(MempoolFullError):
            await impatient.submit([b"x%d" % i for i in range(11)])
    # Two batches of 8 cannot be pending together: the second is busy until the first
    # commits, and the client's retries carry it through.
    async with LedgerClient([url], busy_retries=40, max_backoff_s=0.2) as client:
        first = await client.submit([b"a%d" % i for i in range(8)])
        second = await client.submit([b"b%d" % i for i in range(8)])
        info = await client.wait_committed(second.entry_hashes[-1], timeout=30)
        assert info.leaf_index == 15
        assert (await client.wait_committed(first.entry_hashes[0], timeout=5)).leaf_index == 0


async def test_failover_and_error_mapping(served: tuple[EmbeddedChain, str]) -> None:
    _, url = served
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    async with LedgerClient([dead, url]) as client:
        r = await client.submit([b"failover"])
        assert (await client.wait_committed(r.entry_hashes[0], timeout=30)).leaf_index == 0
        assert client.urls[client._current] == url
        with pytest.raises(EntryError):
            await client.submit([b""])
        with pytest.raises(NotFoundError):
            await client.checkpoint(999)
        with pytest.raises(NotFoundError):
            await client.inclusion_proof(999, leaf_index=0)
        status = await client.status()
        assert status["role"] == "embedded" and status["tree_size"] == 1


async def test_client_body_limit_does_not_limit_peer_batches(tmp_path: Path) -> None:
    import os

    from chain.consensus.messages import Message, Vote
    from chain.node.peer_transport import CHAIN_HEADER, PEER_HEADER, PEER_PATH
    from chain.node.wire import encode_batch, encode_message

    chain = await start_embedded(tmp_path)
    delivered: list[Message] = []
    app = make_app(
        chain.service,
        limits=Limits(max_request_bytes=2048),
        block_limits=BlockLimits(),
        deliver=lambda _peer, m: delivered.append(m),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        big = encode_batch([os.urandom(100) for _ in range(40)])

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        votes = [Vote(1, os.urandom(32), 1, os.urandom(64)) for _ in range(100)]
        headers = {CHAIN_HEADER: chain.trust.chain_id, PEER_HEADER: "v9"}
        octet = {"Content-Type": "application/octet-stream"}
        async with aiohttp.ClientSession() as s:
            for data in (big, chunks()):
                async with s.post(url + "/v1/entries", data=data, headers=octet) as r:
                    assert r.status == 413
                    assert (await r.json(content_type=None))["code"] == "too_large"
            peer_body = encode_batch([encode_message(v) for v in votes])
            assert len(peer_body) > 2048
            async with s.post(url + PEER_PATH, data=peer_body, headers=headers) as r:
                assert r.status == 204
        assert delivered == votes
    finally:
        await server.close()
        await chain.stop()


def test_both_clients_implement_the_protocol() -> None:
    # The notary service depends on LedgerClientProtocol; both implementations offer it.
    for cls in (LedgerClient, EmbeddedChain):
        for name in (
            "submit",
            "wait_committed",
            "latest_checkpoint",
            "checkpoint",
            "inclusion_proof",
            "consistency_proof",
            "block",
            "status",
            "close",
        ):
            assert callable(getattr(cls, name)), (cls, name)
