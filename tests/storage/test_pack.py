"""Folder nodes with packed small blobs (storage.nodes.pack): group commit, recovery from
torn writes and corrupt records, lost and replaced folders, kill -9 of a writer."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage import DocumentStore, WriteFailedError
from storage.errors import BlobNotFoundError, NodeIOError, NodeUnavailableError
from storage.nodes import LocalFolderNode
from storage.nodes import pack as packmod
from storage.nodes.local import SMALL_BLOB
from storage.nodes.pack import FOLDER, HEADER_BYTES, encode_record, scan

REPO = Path(__file__).resolve().parents[2]


def packed(root: Path) -> LocalFolderNode:
    return LocalFolderNode("n1", root, pack=True)


async def keys(node: LocalFolderNode, prefix: str = "") -> list[str]:
    return sorted([k async for k in node.list(prefix)])


def pack_files(root: Path) -> list[Path]:
    return sorted((root / FOLDER).glob("*.pack"))


async def test_small_blobs_go_to_one_pack_and_survive_a_reopen(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    blobs = {f"frag/{i:032x}/00000000.0{i % 6}": os.urandom(4000 + i) for i in range(200)}
    await asyncio.gather(*(node.put(k, v) for k, v in blobs.items()))
    await node.put("manifest/doc.json", b"{}")
    await node.put("frag/" + "0" * 32 + "/00000000.00", b"replaced")
    blobs["frag/" + "0" * 32 + "/00000000.00"] = b"replaced"
    # No file per blob: the packs are the only files of the node.
    assert [p for p in root.rglob("*") if p.is_file()] == pack_files(root)
    for reopened in (node, packed(root)):
        assert await keys(reopened, "frag/") == sorted(blobs)
        assert await keys(reopened, "manifest/") == ["manifest/doc.json"]
        for k, v in blobs.items():
            assert await reopened.get(k) == v
            stat = await reopened.stat(k)
            assert stat is not None and stat.size == len(v)
        assert await reopened.stat("frag/missing") is None
        with pytest.raises(BlobNotFoundError):
            await reopened.get("frag/missing")


async def test_concurrent_puts_share_group_commits(tmp_path: Path) -> None:
    node = packed(tmp_path / "n1")
    await asyncio.gather(*(node.put(f"k/{i}", b"x" * 100) for i in range(500)))
    assert node._pack is not None
    assert 1 <= node._pack.groups < 500


async def test_delete_is_durable_and_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("a/b", b"1")
    await node.put("a/c", b"2")
    await node.delete("a/b")
    await node.delete("a/b")  # missing: not an error
    await node.delete("never/there")
    assert await node.stat("a/b") is None
    reopened = packed(root)
    assert await keys(reopened) == ["a/c"]
    with pytest.raises(BlobNotFoundError):
        await reopened.get("a/b")


async def test_large_blobs_are_files_and_the_newest_write_of_a_key_wins(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    large = os.urandom(SMALL_BLOB + 1)
    await node.put("k", b"small")
    await node.put("k", large)  # a file now: the packed copy must not shadow it
    assert (root / "k").is_file() and await node.get("k") == large
    assert await packed(root).get("k") == large
    await node.put("k", b"small again")  # packed again: shadows the file
    for n in (node, packed(root)):
        assert await n.get("k") == b"small again"
        assert await keys(n) == ["k"]
    await node.delete("k")  # removes both
    assert await keys(packed(root)) == [] and not (root / "k").exists()


async def test_blobs_written_as_files_before_packing_stay_readable(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    await LocalFolderNode("n1", root).put("old/blob", b"from before")
    node = packed(root)
    await node.put("new/blob", b"packed")
    assert await keys(node) == ["new/blob", "old/blob"]
    assert await node.get("old/blob") == b"from before"


async def test_a_torn_write_at_the_end_is_cut_off(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("a", b"acknowledged")
    await node.close()
    [pack] = pack_files(root)
    good = pack.stat().st_size
    torn = encode_record(packmod.PUT, "b", b"never acknowledged" * 100)
    with pack.open("ab") as f:
        f.write(torn[: len(torn) // 2])
    reopened = packed(root)
    assert await keys(reopened) == ["a"] and await reopened.get("a") == b"acknowledged"
    assert pack.stat().st_size == good  # cut back: the next record starts cleanly
    await reopened.put("c", b"after the crash")
    assert await packed(root).get("c") == b"after the crash"


async def test_a_corrupt_header_costs_only_its_own_record(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    for k in ("first", "second", "third"):
        await node.put(k, k.encode() * 50)
    await node.close()
    [pack] = pack_files(root)
    data = bytearray(pack.read_bytes())
    second = data.index(b"second")  # the key, inside the second record's header
    data[second] ^= 0x01
    pack.write_bytes(bytes(data))
    reopened = packed(root)
    assert await keys(reopened) == ["first", "third"]
    assert await reopened.get("third") == b"third" * 50


async def test_a_flipped_data_byte_is_an_io_error_not_wrong_bytes(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("frag/x", b"payload" * 100)
    located = node.blob_location("frag/x")
    assert located is not None
    path, offset, size = located
    assert size == 700
    with path.open("r+b") as f:
        f.seek(offset + 10)
        byte = f.read(1)
        f.seek(offset + 10)
        f.write(bytes([byte[0] ^ 0x80]))
    with pytest.raises(NodeIOError) as info:
        await node.get("frag/x")
    assert info.value.key == "frag/x" and "CRC" in str(info.value)
    await node.put("frag/x", b"repaired")  # a repair rewrites it: the new record wins
    assert await node.get("frag/x") == b"repaired"


async def test_missing_folder_is_unavailable_and_a_new_empty_one_is_an_empty_node(
    tmp_path: Path,
) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("a", b"1")
    shutil.rmtree(root)
    for op in (node.put("a", b"x"), node.get("a"), node.stat("a"), node.delete("a")):
        with pytest.raises(NodeUnavailableError) as info:
            await op
        assert info.value.node == "n1" and info.value.key == "a"
    with pytest.raises(NodeUnavailableError):
        await keys(node)
    assert not root.exists()
    root.mkdir()  # the replacement disk: empty, and the old pack must not be served
    assert await node.stat("a") is None and await keys(node) == []
    await node.put("b", b"2")
    assert await packed(root).get("b") == b"2"


async def test_a_write_to_a_replaced_folder_lands_in_the_new_one(tmp_path: Path) -> None:
    # The folder is checked by the writer thread, once per group: a write that finds
    # another folder than the one its pack log was opened in goes to the new folder.
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("a", b"1")
    shutil.rmtree(root)
    root.mkdir()
    await node.put("b", b"2")
    fresh = packed(root)
    assert await fresh.get("b") == b"2" and await fresh.stat("a") is None
    assert await node.stat("a") is None


async def test_a_failed_fdatasync_fails_its_group_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "n1"
    node = packed(root)
    await node.put("before", b"ok")
    [pack] = pack_files(root)
    size = pack.stat().st_size
    real = os.fdatasync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", failing)
    results = await asyncio.gather(
        *(node.put(f"k{i}", b"y" * 10) for i in range(5)), return_exceptions=True
    )
    assert [type(r) for r in results] == [NodeIOError] * 5
    assert pack.stat().st_size == size  # the group was cut back out of the pack
    assert await node.stat("k0") is None
    monkeypatch.setattr(os, "fdatasync", real)
    await node.put("after", b"ok")
    assert await keys(packed(root)) == ["after", "before"]


async def test_a_full_pack_rolls_over_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packmod, "PACK_BYTES", 10_000)
    root = tmp_path / "n1"
    node = packed(root)
    for i in range(10):
        await node.put(f"k{i}", bytes([i]) * 3000)
    assert len(pack_files(root)) >= 3
    reopened = packed(root)
    for i in range(10):
        assert await reopened.get(f"k{i}") == bytes([i]) * 3000


async def test_a_put_timed_out_on_a_hung_pack_leaves_nothing_once_the_disk_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One node's disk hangs in fdatasync: the put fails after node_timeout, its cleanup
    # times out on that node too, and once the disk answers, the records of the failed
    # put that land late are deleted by the tombstones queued behind them.
    nodes = [LocalFolderNode(f"n{i}", tmp_path / f"n{i}", pack=True) for i in range(6)]
    hung = nodes[0]
    release = threading.Event()
    real = os.fdatasync

    def stuck(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{hung.root}/"):
            release.wait(60)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", stuck)
    store = DocumentStore(nodes, node_timeout=0.5, segment_size=4096)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(WriteFailedError) as info:
            await store.put(b"x" * 100, new_id=True)
        assert loop.time() - started < 10
        assert "n0" in str(info.value) and "timed out" in str(info.value)
    finally:
        release.set()
    await hung.delete("probe")  # queued behind every record of the failed put
    for node in nodes:
        assert await keys(node) == []
    assert [m async for m in DocumentStore(nodes, segment_size=4096).recover_manifests()] == []
    await store.close()
    assert await keys(packed(hung.root)) == []  # and so it stays after a reopen


def test_scan_skips_garbage_between_records_and_reports_the_torn_tail() -> None:
    a = encode_record(packmod.PUT, "a", b"1" * 10)
    b = encode_record(packmod.PUT, "b", b"2" * 10)
    records, end, skipped = scan(a + b"garbage" + b + b[:5])
    assert [(r[1], r[3]) for r in records] == [("a", 10), ("b", 10)]
    assert skipped == len(b"garbage") and end == len(a) + 7 + len(b)
    assert records[0][2] == HEADER_BYTES + 1


def test_a_writer_killed_mid_group_loses_no_acknowledged_blob(tmp_path: Path) -> None:
    """kill -9 a process that keeps putting small blobs: every blob it reported as
    written is intact after reopening; nothing torn is served."""
    root = tmp_path / "n1"
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from storage.nodes.local import LocalFolderNode\n"
        "node = LocalFolderNode('n1', Path(sys.argv[1]), pack=True)\n"
        "async def one(i):\n"
        "    await node.put(f'k/{i}', bytes([i % 251]) * 3000)\n"
        "    print(i, flush=True)\n"
        "async def main():\n"
        "    i = 0\n"
        "    while True:\n"
        "        await asyncio.gather(*(one(i + j) for j in range(50)))\n"
        "        i += 50\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[int] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 400:
            line = child.stdout.readline()
            assert line, "writer died"
            acknowledged.append(int(line))
    finally:
        child.kill()
        child.wait(timeout=30)
    node = packed(root)

    async def check() -> None:
        for i in acknowledged:
            assert await node.get(f"k/{i}") == bytes([i % 251]) * 3000
        for k in await keys(node):
            i = int(k.split("/")[1])
            assert await node.get(k) == bytes([i % 251]) * 3000

    asyncio.run(check())


async def test_scrub_repairs_damaged_and_deleted_packed_fragments_in_place(
    tmp_path: Path,
) -> None:
    def nodes() -> list[LocalFolderNode]:
        return [
            LocalFolderNode(f"node{i}", tmp_path / f"node{i}", zone=f"z{i % 3}", pack=True)
            for i in range(6)
        ]

    store = DocumentStore(nodes(), segment_size=4096)
    rnd = random.Random(7)
    docs = {}
    for _ in range(4):
        data = rnd.randbytes(rnd.randrange(1, 3 * 4096))
        m = await store.put(data)
        docs[m.doc_id] = (m, data)
    damaged = 0
    for m, _ in docs.values():
        first, second = m.segments[0].fragments[:2]
        located = store.pool.node(first.node)
        assert isinstance(located, LocalFolderNode)
        where = located.blob_location(first.key)
        assert where is not None
        with where[0].open("r+b") as f:  # flip a byte of the fragment inside its pack
            f.seek(where[1])
            byte = f.read(1)[0]
            f.seek(where[1])
            f.write(bytes([byte ^ 0x01]))
        await store.pool.node(second.node).delete(second.key)
        damaged += 2
    fresh = DocumentStore(nodes(), segment_size=4096)
    report = await fresh.scrub()
    assert report.healthy, report.problems
    assert report.fragments_repaired == damaged and report.segments_unrecoverable == 0
    for doc_id, (_, data) in docs.items():
        assert await fresh.read_bytes(await fresh.load_manifest(doc_id)) == data
    again = await DocumentStore(nodes(), segment_size=4096).scrub()
    assert again.healthy and again.fragments_bad == 0
