"""S3Node against a real S3 server (Ceph RGW): blob operations and error mapping."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from storage.errors import (
    BlobNotFoundError,
    InvalidKeyError,
    NodePermissionError,
    NodeUnavailableError,
)
from storage.nodes.base import BlobStat, StorageNode
from tests.s3.conftest import TLS_GATEWAY, MakeNode, S3Cluster

pytestmark = pytest.mark.s3


async def test_put_get_stat_delete_round_trip(make_node: MakeNode) -> None:
    node = await make_node(1)
    assert isinstance(node, StorageNode)
    rng = random.Random(1)
    blobs = {
        "docs/a/frag.0": rng.randbytes(1024 * 1024 + 7),
        "docs/a/frag.1": b"",
        "manifests/x.json": b'{"v": 1}',
    }
    for key, data in blobs.items():
        await node.put(key, data)
    for key, data in blobs.items():
        assert await node.get(key) == data
        assert await node.stat(key) == BlobStat(key=key, size=len(data))

    await node.put("docs/a/frag.1", b"replaced")  # overwrite
    assert await node.get("docs/a/frag.1") == b"replaced"

    await node.delete("docs/a/frag.0")
    assert await node.stat("docs/a/frag.0") is None
    with pytest.raises(BlobNotFoundError):
        await node.get("docs/a/frag.0")
    await node.delete("docs/a/frag.0")  # deleting a missing blob is not an error


async def test_list_paginates_and_filters_by_prefix(make_node: MakeNode) -> None:
    node = await make_node(2, list_page_size=3)
    wanted = {f"seg/{i:03d}" for i in range(11)}
    others = {"segx/1", "other/1"}
    await asyncio.gather(*(node.put(k, k.encode()) for k in wanted | others))

    assert {k async for k in node.list("seg/")} == wanted
    listed_all = [k async for k in node.list()]
    assert sorted(listed_all) == sorted(wanted | others)  # no duplicates across pages
    assert [k async for k in node.list("nothing/")] == []


async def test_prefix_isolates_nodes_sharing_a_bucket(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    a = await make_node(3, prefix="tenant-a", name="a")
    b = await make_node(3, prefix="tenant-b/", name="b")
    await a.put("k/1", b"from a")
    await b.put("k/1", b"from b")
    assert await a.get("k/1") == b"from a"
    assert [k async for k in b.list()] == ["k/1"]
    raw = s3_cluster.raw_client(3)
    keys = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=bucket_name)["Contents"])
    assert keys == ["tenant-a/k/1", "tenant-b/k/1"]


async def test_foreign_objects_are_not_listed(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    node = await make_node(4)
    await node.put("ok/1", b"x")
    s3_cluster.raw_client(4).put_object(Bucket=bucket_name, Key="ok/has space", Body=b"y")
    assert [k async for k in node.list("ok/")] == ["ok/1"]


async def test_missing_key_maps_to_blob_not_found(make_node: MakeNode) -> None:
    node = await make_node(5, name="n5")
    with pytest.raises(BlobNotFoundError) as info:
        await node.get("no/such/blob")
    assert info.value.node == "n5"
    assert info.value.key == "no/such/blob"
    assert await node.stat("no/such/blob") is None


@pytest.mark.parametrize("key", ["../escape", "a//b", "/abs", "a/./b", "sp ace", ""])
async def test_invalid_keys_rejected_before_any_io(make_node: MakeNode, key: str) -> None:
    node = await make_node(1, ensure=False)
    with pytest.raises(InvalidKeyError):
        await node.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        await node.get(key)


async def test_wrong_credentials_map_to_permission_error(make_node: MakeNode) -> None:
    good = await make_node(2)
    await good.put("k", b"secret data")
    bad = await make_node(2, name="bad", secret_key="not-the-secret", ensure=False)
    for call in (bad.get("k"), bad.put("k2", b"x"), bad.stat("k")):
        with pytest.raises(NodePermissionError) as info:
            await call
        assert info.value.node == "bad"
    unknown = await make_node(2, name="unknown", access_key="NOSUCHUSER", ensure=False)
    with pytest.raises(NodePermissionError):
        await unknown.get("k")


async def test_killed_gateway_is_unavailable_quickly(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    node = await make_node(6, name="n6", connect_timeout=1.0, read_timeout=2.0, max_attempts=3)
    await node.put("before/kill", b"x")
    s3_cluster.kill(6)
    for op in (node.get("before/kill"), node.put("k", b"y"), node.stat("k"), node.delete("k")):
        started = time.monotonic()
        with pytest.raises(NodeUnavailableError) as info:
            await op
        assert time.monotonic() - started < 5.0  # retried, then gave up: not a hang
        assert info.value.node == "n6"
    with pytest.raises(NodeUnavailableError):
        _ = [k async for k in node.list()]

    s3_cluster.restart(6)  # the data lives in RADOS, not in the gateway
    assert await node.get("before/kill") == b"x"


async def test_frozen_gateway_times_out_without_blocking_the_loop(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    node = await make_node(5, name="n5", connect_timeout=1.0, read_timeout=1.0, max_attempts=2)
    await node.put("k", b"x")
    s3_cluster.freeze(5)  # accepts TCP connections, never answers
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    started = time.monotonic()
    try:
        with pytest.raises(NodeUnavailableError):
            await node.get("k")
    finally:
        beat.cancel()
    elapsed = time.monotonic() - started
    # Two attempts of a 1 s read timeout plus backoff; far below a hang.
    assert 1.0 <= elapsed < 6.0
    # The event loop kept running while boto3 waited on its own thread (a
    # blocked loop would tick about once; a quarter of the ideal count leaves
    # room for a loaded machine).
    assert ticks >= int(elapsed / 0.05) // 4


async def test_many_concurrent_calls_share_a_bounded_pool(make_node: MakeNode) -> None:
    node = await make_node(3, max_connections=4)
    rng = random.Random(7)
    blobs = {f"c/{i}": rng.randbytes(rng.randrange(0, 50_000)) for i in range(40)}
    await asyncio.gather(*(node.put(k, v) for k, v in blobs.items()))
    got = await asyncio.gather(*(node.get(k) for k in blobs))
    assert dict(zip(blobs, got, strict=True)) == blobs


async def test_secrets_never_in_repr_or_errors(make_node: MakeNode, s3_cluster: S3Cluster) -> None:
    secret = s3_cluster.gateway(1).secret_key
    node = await make_node(1)
    bad = await make_node(1, name="bad", secret_key="wrong-" + secret[:8], ensure=False)
    assert secret not in repr(node) and secret not in str(node)
    assert "wrong-" not in repr(bad)
    with pytest.raises(NodePermissionError) as info:
        await bad.get("k")
    assert secret[:8] not in str(info.value)
    assert not any(secret in repr(v) for v in vars(node).values())


async def test_closed_node_refuses_calls(make_node: MakeNode) -> None:
    node = await make_node(4)
    await node.close()
    await node.close()  # idempotent
    with pytest.raises(NodeUnavailableError):
        await node.get("k")


async def test_gateways_are_independent_namespaces(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    # The same bucket and key on every gateway hold each gateway's own bytes;
    # otherwise "six nodes" would secretly be one.
    nodes = [await make_node(i, name=f"g{i}") for i in range(1, 7)]
    for i, node in enumerate(nodes, start=1):
        await node.put("who", f"gateway {i}".encode())
    for i, node in enumerate(nodes, start=1):
        assert await node.get("who") == f"gateway {i}".encode()
        assert [k async for k in node.list()] == ["who"]
    users = {s3_cluster.gateway(i).access_key for i in range(1, 7)}
    assert len(users) == 6


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_tls_endpoint_verifies_the_certificate(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    # The CA bundle that signed the gateway's certificate: works.
    node = await make_node(TLS_GATEWAY, verify_tls=str(s3_cluster.ca_file))
    assert node.name and s3_cluster.gateway(TLS_GATEWAY).endpoint.startswith("https://")
    await node.put("tls/1", b"over tls")
    assert await node.get("tls/1") == b"over tls"
    # The system CAs do not know a self-signed certificate: refused, not ignored.
    strict = await make_node(TLS_GATEWAY, name="strict", verify_tls=True, ensure=False)
    with pytest.raises(NodeUnavailableError, match="TLS"):
        await strict.get("tls/1")
    # Verification switched off (tests only) connects anyway.
    lax = await make_node(TLS_GATEWAY, name="lax", verify_tls=False, ensure=False)
    assert await lax.get("tls/1") == b"over tls"
