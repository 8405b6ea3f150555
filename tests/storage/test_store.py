"""Integration: documents stored on 6 folder nodes, read back through real failures."""

# Blocking file-system calls are how these tests inject failures; the loop has nothing else to do.
# ruff: noqa: ASYNC240, ASYNC221

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import (
    ConfigError,
    DigestMismatchError,
    DocumentStore,
    ManifestError,
    NodeUnavailableError,
    UnrecoverableError,
    WriteFailedError,
)
from storage.manifest import manifest_key
from storage.nodes import LocalFolderNode
from storage.nodes.s3 import S3Node

from .conftest import Cluster, flip_byte, fragment_nodes, truncate

SEG = 4096


async def test_sizes_and_sources_round_trip(cluster: Cluster) -> None:
    store = cluster.store()
    rnd = random.Random(1)
    for size in [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 17]:
        data = rnd.randbytes(size)

        async def agen(data: bytes = data) -> AsyncIterator[bytes]:
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        def gen(data: bytes = data) -> Iterator[bytes]:
            yield data[:3]
            yield data[3:]

        for source in (data, io.BytesIO(data), agen(), gen()):
            m = await store.put(source)
            assert m.size == size and m.sha256 == hashlib.sha256(data).hexdigest()
            assert len(m.segments) == -(-size // SEG)
            assert await store.read_bytes(m) == data
            assert await store.load_manifest(m.doc_id) == m


async def test_manifest_records_codec_placement_and_digests(cluster: Cluster) -> None:
    times = iter(range(10))
    from datetime import UTC, datetime

    store = cluster.store(
        clock=lambda: datetime(2026, 1, 2, 3, 4, next(times), tzinfo=UTC),
        random_bytes=lambda n: bytes(range(n)),
    )
    data = os.urandom(3 * SEG)
    m = await store.put(data)
    assert m.doc_id == bytes(range(16)).hex()
    assert m.created == "2026-01-02T03:04:00Z"
    assert (m.codec.ec_type, m.codec.k, m.codec.m) == ("isa_l_rs_cauchy", 4, 2)
    assert m.revision == 1 and m.encryption is None
    nodes = fragment_nodes(m)
    assert len(set(nodes)) == 6
    for seg in m.segments:
        assert [f.node for f in seg.fragments] == nodes
        assert (
            seg.sha256 == hashlib.sha256(data[seg.index * SEG : (seg.index + 1) * SEG]).hexdigest()
        )
        for f in seg.fragments:
            assert hashlib.sha256(cluster.path(f).read_bytes()).hexdigest() == f.sha256
    for node in nodes:
        assert (cluster.root(node) / manifest_key(m.doc_id)).is_file()


async def test_random_documents_survive_random_real_failures(cluster: Cluster) -> None:
    """Up to m bad fragments per segment: node folders removed, bits flipped, truncations."""
    rnd = random.Random(7)
    store = cluster.store(segment_size=8 * 1024 * 1024)
    sizes = [0, 1, 8 * 1024 * 1024, rnd.randrange(1, 20 * 1024 * 1024), 64 * 1024 * 1024]
    docs = []
    for size in sizes:
        data = rnd.randbytes(size)
        docs.append((await store.put(data), data))
    # One node folder removed entirely: one erasure in every segment of every document.
    gone = rnd.choice([n.name for n in cluster.nodes])
    shutil.rmtree(cluster.root(gone))
    for m, data in docs:
        for seg in m.segments:
            # One more fault per segment, on a fragment not on the removed node.
            entry = rnd.choice([f for f in seg.fragments if f.node != gone])
            how = rnd.choice(["delete", "flip", "truncate"])
            path = cluster.path(entry)
            if how == "delete":
                path.unlink()
            elif how == "flip":
                flip_byte(path, rnd)
            else:
                truncate(path, rnd)
        fresh = cluster.store(create=False, segment_size=8 * 1024 * 1024)
        assert await fresh.read_bytes(m) == data


@pytest.mark.parametrize("seed", range(6))
async def test_small_documents_with_random_fault_sets(cluster: Cluster, seed: int) -> None:
    rnd = random.Random(seed)
    store = cluster.store()
    data = rnd.randbytes(rnd.randrange(1, 12 * SEG))
    m = await store.put(data)
    for seg in m.segments:
        for entry in rnd.sample(seg.fragments, rnd.randrange(0, 3)):
            how = rnd.choice(["delete", "flip", "truncate"])
            path = cluster.path(entry)
            {
                "delete": lambda p: p.unlink(),
                "flip": lambda p: flip_byte(p, rnd),
                "truncate": lambda p: truncate(p, rnd),
            }[how](path)
    assert await store.read_bytes(m) == data


async def test_more_than_m_losses_name_segments_and_nodes(cluster: Cluster) -> None:
    store = cluster.store()
    data = os.urandom(4 * SEG)
    m = await store.put(data)
    nodes = fragment_nodes(m)
    shutil.rmtree(cluster.root(nodes[0]))
    flip_byte(cluster.path(m.segments[2].fragments[1]), random.Random(3))
    cluster.path(m.segments[2].fragments[2]).unlink()
    # Segments 0, 1, 3 keep 5 fragments; segment 2 has three bad ones.
    got = b""
    with pytest.raises(UnrecoverableError) as info:
        async for chunk in store.read(m):
            got += chunk
    assert got == data[: 2 * SEG]  # what was yielded before the error is correct
    err = info.value
    assert err.doc_id == m.doc_id
    assert [s.segment for s in err.segments] == [2]
    faults = err.segments[0].faults
    assert set(faults) == {nodes[0], nodes[1], nodes[2]}
    assert "unavailable" in faults[nodes[0]]
    assert "SHA-256 mismatch" in faults[nodes[1]]
    assert "missing" in faults[nodes[2]]
    assert "segment 2" in str(err) and nodes[1] in str(err)
    # A range read of healthy segments still works.
    assert b"".join([c async for c in store.read(m, 0, 2 * SEG)]) == data[: 2 * SEG]


async def test_every_segment_unrecoverable_is_reported_from_the_read_window(
    cluster: Cluster,
) -> None:
    store = cluster.store(read_ahead=3)
    m = await store.put(os.urandom(4 * SEG))
    for node in fragment_nodes(m)[:3]:
        shutil.rmtree(cluster.root(node))
    with pytest.raises(UnrecoverableError) as info:
        await store.read_bytes(m)
    assert [s.segment for s in info.value.segments] == [0, 1, 2, 3]


async def test_range_reads_touch_only_needed_segments(cluster: Cluster) -> None:
    store = cluster.store()
    rnd = random.Random(5)
    data = rnd.randbytes(10 * SEG + 100)
    m = await store.put(data)
    for _ in range(30):
        a = rnd.randrange(0, len(data) + 1)
        b = rnd.randrange(a, len(data) + 1)
        assert b"".join([c async for c in store.read(m, a, b)]) == data[a:b]
    # Destroy every fragment of segments other than 3 and 4: a read inside them still works.
    for seg in m.segments:
        if seg.index not in (3, 4):
            for f in seg.fragments:
                cluster.path(f).unlink()
    assert (
        b"".join([c async for c in store.read(m, 3 * SEG + 5, 5 * SEG - 1)])
        == data[3 * SEG + 5 : 5 * SEG - 1]
    )
    with pytest.raises(ValueError):
        [c async for c in store.read(m, 5, 4)]
    with pytest.raises(ValueError):
        [c async for c in store.read(m, 0, len(data) + 1)]


async def test_expected_sha256_mismatch_leaves_nothing_on_any_node(cluster: Cluster) -> None:
    store = cluster.store()
    data = os.urandom(7 * SEG + 3)
    with pytest.raises(DigestMismatchError) as info:
        await store.put(data, expected_sha256="00" * 32)
    assert info.value.calculated == hashlib.sha256(data).hexdigest()
    assert cluster.files() == []
    m = await store.put(data, expected_sha256=hashlib.sha256(data).hexdigest().upper())
    assert await store.read_bytes(m) == data


async def test_a_node_gone_during_put_fails_the_put_and_leaves_nothing(cluster: Cluster) -> None:
    store = cluster.store()
    shutil.rmtree(cluster.root("node3"))
    with pytest.raises(WriteFailedError) as info:
        await store.put(os.urandom(5 * SEG), doc_id="doc-a")
    assert "node3" in str(info.value)
    assert cluster.files() == []
    assert [m async for m in store.recover_manifests()] == []


async def test_source_failure_mid_stream_leaves_nothing(cluster: Cluster) -> None:
    store = cluster.store()

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield os.urandom(SEG)
        raise ConnectionResetError("client went away")

    with pytest.raises(WriteFailedError, match="client went away"):
        await store.put(broken())
    assert cluster.files() == []


async def test_cancelled_put_leaves_nothing(cluster: Cluster) -> None:
    store = cluster.store()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(SEG)
            started.set()

    task = asyncio.create_task(store.put(endless()))
    await asyncio.wait_for(started.wait(), 10)
    deadline = asyncio.get_running_loop().time() + 10
    # Poll the disk (no event to wait on): fragments of the put must exist before cancelling.
    while not any(cluster.base.rglob("*.0[0-5]")):
        assert asyncio.get_running_loop().time() < deadline, "put wrote nothing"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cluster.files() == []


async def test_disk_full_node_fails_the_put_cleanly(tmp_path: Path) -> None:
    import subprocess
    import tempfile

    mnt = Path(tempfile.mkdtemp(prefix="notary-full-"))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr!r}")
    try:
        nodes = [LocalFolderNode(f"node{i}", tmp_path / f"node{i}") for i in range(5)]
        nodes.append(LocalFolderNode("full", mnt / "full"))
        store = DocumentStore(nodes, segment_size=64 * 1024)
        with pytest.raises(WriteFailedError) as info:
            await store.put(os.urandom(2 * 1024 * 1024))
        assert any("full" in str(c) for c in info.value.causes)
        left = [p for p in [*tmp_path.rglob("*"), *mnt.rglob("*")] if p.is_file()]
        assert left == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


async def test_hung_node_times_out_and_counts_as_an_erasure(cluster: Cluster) -> None:
    store = cluster.store(node_timeout=0.5)
    data = os.urandom(2 * SEG)
    m = await store.put(data)
    # A FIFO in place of a fragment: opening it blocks until a writer comes (a real hang).
    hung = cluster.path(m.segments[0].fragments[0])
    hung.unlink()
    os.mkfifo(hung)
    try:
        assert await store.read_bytes(m) == data
    finally:
        # Release the reader thread blocked in open(): a writer end needs a reader present
        # (ENXIO until the thread gets there, if the loaded machine has not started it yet).
        for _ in range(1000):
            try:
                os.close(os.open(hung, os.O_WRONLY | os.O_NONBLOCK))
                break
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                await asyncio.sleep(0.01)


async def test_a_node_that_never_answers_fails_the_put_after_the_timeout(
    tmp_path: Path,
) -> None:
    # A real hang: an S3 endpoint that accepts connections and reads, but never answers.
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = S3Node(
        "hung",
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket="b",
        access_key="k",
        secret_key="s",
        read_timeout=60,
        max_attempts=1,
    )
    nodes = [LocalFolderNode(f"node{i}", tmp_path / f"node{i}", pack=True) for i in range(5)]
    store = DocumentStore([*nodes, hung], node_timeout=0.5, segment_size=SEG)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(WriteFailedError) as info:
            await store.put(b"x" * 100, doc_id="never-answered")
        assert loop.time() - started < 10
        timeouts = [c for c in _causes(info.value) if isinstance(c, NodeUnavailableError)]
        assert timeouts and all(c.node == "hung" for c in timeouts)
        assert "timed out" in str(timeouts[0])
        for node in nodes:  # nothing of the failed put stays visible
            assert [k async for k in node.list("manifest/")] == []
    finally:
        for w in held:
            w.close()
        server.close()
        await store.close()


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        e = todo.pop()
        seen.append(e)
        todo.extend(getattr(e, "causes", []) or [])
        if e.__cause__ is not None:
            todo.append(e.__cause__)
    return seen


async def test_doc_ids_are_validated_and_immutable(cluster: Cluster) -> None:
    store = cluster.store()
    await store.put(b"first", doc_id="report-2026")
    with pytest.raises(WriteFailedError, match="already exists"):
        await store.put(b"second", doc_id="report-2026")
    m = await store.load_manifest("report-2026")
    assert await store.read_bytes(m) == b"first"
    for bad in ["../x", "UPPER", "", "a" * 65]:
        with pytest.raises(ManifestError):
            await store.put(b"x", doc_id=bad)
    with pytest.raises(ValueError, match="64 hex"):
        await store.put(b"x", expected_sha256="abc")
    assert sorted(p.name for p in cluster.base.rglob("*.json")) == ["report-2026.json"] * 6


async def test_configuration_errors(cluster: Cluster) -> None:
    with pytest.raises(ConfigError):
        cluster.store(k=4, m=3)  # 7 fragments, 6 nodes
    with pytest.raises(ConfigError):
        cluster.store(k=2, m=3)
    with pytest.raises(ConfigError):
        DocumentStore([*cluster.open_nodes(), LocalFolderNode("node0", cluster.base / "x")])
    store = cluster.store(k=3, m=3)
    m = await store.put(b"abc" * 5000)
    assert await cluster.store().read_bytes(m) == b"abc" * 5000  # reads use the manifest's codec


async def test_fallback_codec_documents_read_with_their_own_codec(cluster: Cluster) -> None:
    store = cluster.store(ec_type="liberasurecode_rs_vand")
    data = os.urandom(3 * SEG + 1)
    m = await store.put(data)
    assert m.codec.ec_type == "liberasurecode_rs_vand"
    shutil.rmtree(cluster.root(fragment_nodes(m)[0]))
    assert await cluster.store(create=False).read_bytes(m) == data


async def test_delete_removes_everything(cluster: Cluster) -> None:
    store = cluster.store()
    keep = await store.put(b"keep me" * 1000)
    m = await store.put(os.urandom(3 * SEG))
    await store.delete(m)
    with pytest.raises(ManifestError):
        await store.load_manifest(m.doc_id)
    assert all(m.doc_id not in str(p) for p in cluster.files())
    assert await store.read_bytes(keep) == b"keep me" * 1000


async def test_a_failed_put_stops_reading_its_source(cluster: Cluster) -> None:
    store = cluster.store()
    shutil.rmtree(cluster.root("node0"))
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):
            pulled += 1
            yield os.urandom(SEG)

    with pytest.raises(WriteFailedError):
        await store.put(source())
    assert pulled < 50  # bounded by the segments in flight, not the document
    assert cluster.files() == []


async def test_delete_with_a_node_down_removes_the_rest_and_reports_the_node(
    cluster: Cluster,
) -> None:
    from storage import NodeUnavailableError

    store = cluster.store()
    m = await store.put(os.urandom(3 * SEG))
    gone = fragment_nodes(m)[1]
    shutil.rmtree(cluster.root(gone))
    with pytest.raises(NodeUnavailableError) as info:
        await store.delete(m)
    assert info.value.node == gone
    assert all(m.doc_id not in str(p) for p in cluster.files())
