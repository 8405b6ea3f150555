"""The document store over six real S3 nodes (Ceph RGW gateways), failures injected
by killing gateway processes."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from storage import DocumentStore, NodePermissionError, UnrecoverableError, WriteFailedError
from storage.nodes.s3 import S3Node
from tests.s3.conftest import N_GATEWAYS, MakeNode, S3Cluster

pytestmark = pytest.mark.s3

SEGMENT = 256 * 1024


def _document(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _six_nodes(make_node: MakeNode, **kwargs: object) -> list[S3Node]:
    # One node per gateway, each its own failure zone.
    return list(
        await asyncio.gather(
            *(
                make_node(i, name=f"s3-{i}", zone=f"zone-{i}", **kwargs)
                for i in range(1, N_GATEWAYS + 1)
            )
        )
    )


async def test_document_survives_two_killed_gateways(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    nodes = await _six_nodes(make_node)
    store = DocumentStore(nodes, k=4, m=2, segment_size=SEGMENT)
    doc = _document(3 * 1024 * 1024 + 12345, seed=2)  # 13 segments, the last one short
    manifest = await store.put(doc, expected_sha256=hashlib.sha256(doc).hexdigest())
    assert len(manifest.segments) == 13
    assert {f.node for s in manifest.segments for f in s.fragments} == {n.name for n in nodes}
    assert await store.read_bytes(manifest) == doc
    assert await store.load_manifest(manifest.doc_id) == manifest  # from the nodes alone

    s3_cluster.kill(2)
    s3_cluster.kill(5)
    assert await store.read_bytes(manifest) == doc
    # A range read across a segment boundary, degraded too.
    chunks = [c async for c in store.read(manifest, SEGMENT - 10, 2 * SEGMENT + 10)]
    assert b"".join(chunks) == doc[SEGMENT - 10 : 2 * SEGMENT + 10]

    # A third lost node is one too many: a clear error naming the nodes, no bytes.
    s3_cluster.kill(3)
    with pytest.raises(UnrecoverableError) as info:
        await store.read_bytes(manifest)
    named = {n for seg in info.value.segments for n in seg.faults}
    assert named == {"s3-2", "s3-3", "s3-5"}
    await store.close()


async def test_scrub_moves_fragments_off_a_killed_gateway(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    nodes = await _six_nodes(make_node)
    # A seventh node (another bucket behind gateway 1) to rebuild onto.
    spare = await make_node(1, name="s3-spare", zone="zone-spare", bucket=bucket_name + "-spare")
    store = DocumentStore([*nodes, spare], k=4, m=2, segment_size=SEGMENT)
    doc = _document(1024 * 1024 + 77, seed=3)
    manifest = await store.put(doc)
    used = {f.node for s in manifest.segments for f in s.fragments}
    victim = sorted(used - {"s3-1"})[0]  # not the spare's gateway
    victim_gw = int(victim.split("-")[1])

    s3_cluster.kill(victim_gw)
    report = await store.scrub()
    assert report.documents == 1
    assert report.segments_unrecoverable == 0
    assert report.fragments_repaired == len(manifest.segments)

    repaired = await store.load_manifest(manifest.doc_id)
    now_used = {f.node for s in repaired.segments for f in s.fragments}
    assert victim not in now_used
    assert len(now_used) == 6
    # Full redundancy again: two more gateways can go and the read still succeeds.
    others = sorted(int(n.split("-")[1]) for n in now_used - {"s3-1", "s3-spare"})
    s3_cluster.kill(others[0])
    s3_cluster.kill(others[1])
    assert await store.read_bytes(repaired) == doc
    await store.close()


async def test_locked_store_refuses_deletion_and_stays_readable(make_node: MakeNode) -> None:
    nodes = await _six_nodes(make_node, object_lock_days=1, bucket_object_lock=True)
    store = DocumentStore(nodes, k=4, m=2, segment_size=SEGMENT)
    doc = _document(600 * 1024, seed=4)
    manifest = await store.put(doc)
    with pytest.raises(NodePermissionError):
        await store.delete(manifest)
    assert await store.load_manifest(manifest.doc_id) == manifest
    assert await store.read_bytes(manifest) == doc
    await store.close()


async def test_failed_put_leaves_nothing_on_the_live_nodes(
    make_node: MakeNode, s3_cluster: S3Cluster
) -> None:
    nodes = await _six_nodes(make_node)
    store = DocumentStore(nodes, k=4, m=2, segment_size=SEGMENT)
    s3_cluster.kill(4)  # every placement uses all six nodes: this put cannot land
    with pytest.raises(WriteFailedError):
        await store.put(_document(700 * 1024, seed=5), doc_id="doomed")
    for node in nodes:
        if node.name != "s3-4":
            assert [k async for k in node.list()] == [], f"{node.name} kept leftovers"
    assert [m async for m in store.recover_manifests()] == []
    await store.close()


async def test_documents_recovered_from_the_buckets_alone(make_node: MakeNode) -> None:
    nodes = await _six_nodes(make_node)
    store = DocumentStore(nodes, k=4, m=2, segment_size=SEGMENT)
    docs = {f"doc-{i}": _document(200 * 1024 * i + 3, seed=10 + i) for i in range(3)}
    for doc_id, body in docs.items():
        await store.put(body, doc_id=doc_id)
    await store.close()

    # A new process knows only the node configuration: no index, no manifests.
    fresh = DocumentStore(await _six_nodes(make_node), k=4, m=2, segment_size=SEGMENT)
    found = {m.doc_id: m async for m in fresh.recover_manifests()}
    assert sorted(found) == sorted(docs)
    for doc_id, body in docs.items():
        assert await fresh.read_bytes(found[doc_id]) == body
    await fresh.close()


async def test_flipped_fragment_on_s3_is_caught_and_scrubbed(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    nodes = await _six_nodes(make_node)
    store = DocumentStore(nodes, k=4, m=2, segment_size=SEGMENT)
    doc = _document(3 * SEGMENT, seed=6)
    manifest = await store.put(doc)
    target = manifest.segments[1].fragments[2]
    gw = int(target.node.split("-")[1])
    raw = s3_cluster.raw_client(gw)
    original = raw.get_object(Bucket=bucket_name, Key=target.key)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    raw.put_object(Bucket=bucket_name, Key=target.key, Body=bytes(flipped))

    assert await store.read_bytes(manifest) == doc  # the bad fragment is an erasure
    report = await store.scrub()
    assert report.fragments_bad == 1 and report.fragments_repaired == 1
    assert raw.get_object(Bucket=bucket_name, Key=target.key)["Body"].read() == original
    again = await store.scrub()
    assert again.fragments_bad == 0 and again.healthy
    await store.close()
