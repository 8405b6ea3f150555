"""Recovery of manifests from the nodes alone, and scrub/repair restoring full redundancy."""

# Blocking file-system calls are how these tests inject failures.

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from storage import DocumentStore, Manifest, ManifestError
from storage.manifest import encode_envelope, manifest_key
from storage.nodes import LocalFolderNode

from .conftest import Cluster, flip_byte, fragment_nodes, truncate

SEG = 4096


async def put_docs(
    store: DocumentStore, count: int, seed: int
) -> dict[str, tuple[Manifest, bytes]]:
    rnd = random.Random(seed)
    docs = {}
    for _ in range(count):
        data = rnd.randbytes(rnd.randrange(0, 6 * SEG))
        m = await store.put(data)
        docs[m.doc_id] = (m, data)
    return docs


def copy_path(cluster: Cluster, node: str, doc_id: str) -> Path:
    return cluster.root(node) / manifest_key(doc_id)


async def test_all_manifests_recovered_from_nodes_alone(cluster: Cluster) -> None:
    docs = await put_docs(cluster.store(), 8, seed=1)
    rnd = random.Random(2)
    # Damage manifest copies: each document keeps at least one valid copy.
    for doc_id, (m, _) in docs.items():
        holders = fragment_nodes(m) or [n.name for n in cluster.nodes]
        holders = [n for n in holders if copy_path(cluster, n, doc_id).exists()]
        victims = rnd.sample(holders, len(holders) - 1)
        for i, node in enumerate(victims):
            p = copy_path(cluster, node, doc_id)
            if i % 3 == 0:
                p.unlink()
            elif i % 3 == 1:
                flip_byte(p, rnd)
            else:
                truncate(p, rnd)
    fresh = cluster.store()  # a new process: no index, only the nodes
    recovered = {m.doc_id: m async for m in fresh.recover_manifests()}
    assert recovered == {d: m for d, (m, _) in docs.items()}
    for doc_id, (_, data) in docs.items():
        assert await fresh.read_bytes(await fresh.load_manifest(doc_id)) == data


async def test_manifest_copies_are_written_to_every_placement_node(cluster: Cluster) -> None:
    m = await cluster.store().put(os.urandom(SEG))
    holders = sorted(n.name for n in cluster.nodes if copy_path(cluster, n.name, m.doc_id).exists())
    assert holders == sorted(fragment_nodes(m)) and len(holders) >= m.codec.m + 1


async def test_highest_valid_revision_wins_and_forged_copies_are_ignored(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(os.urandom(2 * SEG))
    nodes = fragment_nodes(m)
    newer = m.with_segments(m.segments, revision=5)
    copy_path(cluster, nodes[0], m.doc_id).write_bytes(encode_envelope(newer))
    assert (await store.load_manifest(m.doc_id)).revision == 5
    # A copy claiming a higher revision but whose digest does not match is ignored.
    env = json.loads(encode_envelope(m.with_segments(m.segments, revision=9)))
    env["manifest"]["size"] += 1
    copy_path(cluster, nodes[1], m.doc_id).write_bytes(json.dumps(env).encode())
    assert (await store.load_manifest(m.doc_id)).revision == 5


async def test_missing_all_copies_is_a_manifest_error(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(b"x" * 100)
    for n in cluster.nodes:
        p = copy_path(cluster, n.name, m.doc_id)
        if p.exists():
            p.write_bytes(b"{}")
    with pytest.raises(ManifestError, match="no valid manifest copy"):
        await store.load_manifest(m.doc_id)
    assert [x async for x in store.recover_manifests()] == []
    report = await store.scrub()
    assert report.manifests_unreadable == 1 and not report.healthy


async def test_scrub_on_healthy_store_changes_nothing(cluster: Cluster) -> None:
    store = cluster.store()
    docs = await put_docs(store, 4, seed=3)
    before = {p: p.read_bytes() for p in cluster.files()}
    report = await store.scrub()
    assert report.documents == 4 and report.healthy
    assert report.fragments_checked == 6 * sum(len(m.segments) for m, _ in docs.values())
    assert report.fragments_bad == report.fragments_repaired == 0
    assert {p: p.read_bytes() for p in cluster.files()} == before


async def test_scrub_repairs_a_wiped_disk_and_corruption_in_place(cluster: Cluster) -> None:
    """6 nodes, no spare: a disk replaced (folder emptied), bit flips, truncations, deletions."""
    store = cluster.store()
    docs = await put_docs(store, 5, seed=4)
    rnd = random.Random(5)
    wiped = "node2"
    shutil.rmtree(cluster.root(wiped))
    cluster.root(wiped).mkdir()  # the replacement disk: empty but healthy
    damaged = 0
    for m, _ in docs.values():
        for seg in m.segments:
            entry = rnd.choice([f for f in seg.fragments if f.node != wiped])
            rnd.choice(
                [lambda p: p.unlink(), lambda p: flip_byte(p, rnd), lambda p: truncate(p, rnd)]
            )(cluster.path(entry))
            damaged += 1
    fresh = cluster.store()
    report = await fresh.scrub()
    segments = sum(len(m.segments) for m, _ in docs.values())
    assert report.healthy, report.problems
    assert report.fragments_bad == report.fragments_repaired == damaged + segments
    assert report.segments_unrecoverable == 0
    # The repaired store holds every fragment again, byte-identical, on the same nodes.
    for doc_id, (m, data) in docs.items():
        current = await fresh.load_manifest(doc_id)
        assert fragment_nodes(current) == fragment_nodes(m)
        for seg in current.segments:
            for f in seg.fragments:
                assert cluster.path(f).stat().st_size == f.size
        assert await fresh.read_bytes(current) == data
    again = await fresh.scrub()
    assert again.healthy and again.fragments_bad == 0
    await assert_survives_any_m_losses(cluster, docs)


async def assert_survives_any_m_losses(
    cluster: Cluster, docs: dict[str, tuple[Manifest, bytes]]
) -> None:
    """Full redundancy: for every set of m nodes, a copy of the data minus them still reads."""
    names = [n.name for n in cluster.nodes if cluster.root(n.name).exists()]
    for lost in itertools.combinations(names, 2):
        copy = cluster.base.parent / "copy"
        shutil.copytree(cluster.base, copy)
        try:
            for node in lost:
                shutil.rmtree(copy / node)
            nodes = [
                LocalFolderNode(n.name, copy / n.name, zone=n.zone, create=False)
                for n in cluster.nodes
            ]
            store = DocumentStore(nodes, segment_size=SEG)
            for doc_id, (_, data) in docs.items():
                assert await store.read_bytes(await store.load_manifest(doc_id)) == data, lost
        finally:
            shutil.rmtree(copy)


async def test_scrub_moves_fragments_of_a_lost_node_to_a_replacement(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "data", 8, 4)  # 8 nodes in 4 zones: spares exist
    store = cluster.store()
    docs = await put_docs(store, 6, seed=6)
    gone = "node5"
    shutil.rmtree(cluster.root(gone))
    affected = {d for d, (m, _) in docs.items() if gone in fragment_nodes(m)}
    assert affected, "seeded documents should use node5"
    report = await cluster.store(create=False).scrub()
    assert report.healthy, report.problems
    lost_fragments = sum(len(docs[d][0].segments) for d in affected)
    assert report.fragments_repaired == lost_fragments
    fresh = cluster.store(create=False)
    for doc_id, (m, data) in docs.items():
        current = await fresh.load_manifest(doc_id)
        nodes = fragment_nodes(current)
        if doc_id in affected and m.segments:
            assert current.revision == m.revision + 1
            assert gone not in nodes and len(set(nodes)) == 6
            zones = [next(n.zone for n in cluster.nodes if n.name == x) for x in nodes]
            assert max(zones.count(z) for z in zones) <= 2  # zone rule kept
            for node in nodes:  # manifest copy on every node of the new placement
                assert copy_path(cluster, node, doc_id).exists()
            others = set(n.name for n in cluster.nodes) - set(nodes) - {gone}
            assert not any(copy_path(cluster, o, doc_id).exists() for o in others)
        else:
            assert current == m
        assert await fresh.read_bytes(current) == data
    # Full redundancy again: two more nodes of any affected document can go.
    for doc_id in affected:
        current = await fresh.load_manifest(doc_id)
        if not current.segments:
            continue
        for lost in itertools.combinations(fragment_nodes(current), 2):
            # The lost nodes point at folders that do not exist: unavailable.
            readers = [
                LocalFolderNode(
                    n.name,
                    cluster.base / "absent" if n.name in lost else cluster.root(n.name),
                    zone=n.zone,
                    create=False,
                )
                for n in cluster.nodes
            ]
            reader = DocumentStore(readers, segment_size=SEG)
            assert await reader.read_bytes(current) == docs[doc_id][1]


async def test_scrub_restores_missing_and_damaged_manifest_copies(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(os.urandom(3 * SEG))
    nodes = fragment_nodes(m)
    copy_path(cluster, nodes[0], m.doc_id).unlink()
    flip_byte(copy_path(cluster, nodes[1], m.doc_id), random.Random(1))
    copy_path(cluster, nodes[2], m.doc_id).write_bytes(b"")
    report = await store.scrub()
    assert report.manifest_copies_repaired == 3 and report.healthy
    for node in nodes:
        assert copy_path(cluster, node, m.doc_id).read_bytes() == encode_envelope(m)


async def test_scrub_reports_unrecoverable_segments_without_touching_them(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(os.urandom(3 * SEG))
    seg = m.segments[1]
    for f in seg.fragments[:3]:
        cluster.path(f).unlink()
    report = await store.scrub()
    assert report.segments_unrecoverable == 1 and report.documents_unrecoverable == 1
    assert report.fragments_bad == 3 and report.fragments_repaired == 0
    assert any("segment 1 unrecoverable" in p for p in report.problems)
    assert (await store.load_manifest(m.doc_id)) == m  # nothing changed for the lost segment


async def test_scrub_without_repair_only_reports(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(os.urandom(2 * SEG))
    victim = cluster.path(m.segments[0].fragments[3])
    victim.unlink()
    report = await store.scrub(repair=False)
    assert report.fragments_bad == 1 and report.fragments_repaired == 0
    assert not victim.exists()


async def test_sampled_scrub_checks_a_fraction(cluster: Cluster) -> None:
    store = cluster.store()
    await put_docs(store, 6, seed=8)
    total = (await store.scrub()).fragments_checked
    rnd = random.Random(9)
    sampled = (await store.scrub(sample=0.5, rng=rnd.random)).fragments_checked
    assert 0.3 * total < sampled < 0.7 * total
    assert (await store.scrub(sample=0.0)).fragments_checked == 0


async def test_recovery_and_reads_with_m_nodes_gone(cluster: Cluster) -> None:
    docs = await put_docs(cluster.store(), 5, seed=10)
    for node in ("node1", "node4"):
        shutil.rmtree(cluster.root(node))
    fresh = cluster.store(create=False)
    recovered = {m.doc_id: m async for m in fresh.recover_manifests()}
    assert recovered == {d: m for d, (m, _) in docs.items()}
    for doc_id, (_, data) in docs.items():
        assert await fresh.read_bytes(recovered[doc_id]) == data


async def test_scrub_without_a_spare_node_reports_what_it_cannot_fix(cluster: Cluster) -> None:
    store = cluster.store()
    m = await store.put(os.urandom(3 * SEG))
    gone = fragment_nodes(m)[2]
    shutil.rmtree(cluster.root(gone))
    report = await cluster.store(create=False).scrub()
    assert report.fragments_bad == 3 and report.fragments_repaired == 0
    assert not report.healthy
    assert any("no healthy node left" in p for p in report.problems)
    current = await cluster.store(create=False).load_manifest(m.doc_id)
    assert current == m  # nothing moved, nothing lost
