"""Local folder node: atomic writes, key validation, symlink escapes, error mapping."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import (
    BlobNotFoundError,
    InvalidKeyError,
    NodeFullError,
    NodeIOError,
    NodePermissionError,
    NodeUnavailableError,
)
from storage.nodes import LocalFolderNode, StorageNode
from storage.nodes.base import validate_key
from storage.nodes.local import map_os_error

REPO = Path(__file__).resolve().parents[2]


async def keys(node: LocalFolderNode, prefix: str = "") -> list[str]:
    return sorted([k async for k in node.list(prefix)])


def test_is_a_storage_node(tmp_path: Path) -> None:
    node = LocalFolderNode("n1", tmp_path / "n1", zone="z1")
    assert isinstance(node, StorageNode)
    assert (node.name, node.zone) == ("n1", "z1")
    assert (tmp_path / "n1").is_dir()


async def test_put_get_stat_list_delete(tmp_path: Path) -> None:
    node = LocalFolderNode("n1", tmp_path / "n1")
    await node.put("frag/doc/00000000.00", b"hello")
    await node.put("manifest/doc.json", b"{}")
    await node.put("frag/doc/00000000.00", b"replaced")
    assert await node.get("frag/doc/00000000.00") == b"replaced"
    stat = await node.stat("frag/doc/00000000.00")
    assert stat is not None and stat.size == 8
    assert await node.stat("frag/doc/missing") is None
    assert await node.stat("frag/doc") is None  # a folder is not a blob
    assert await keys(node) == ["frag/doc/00000000.00", "manifest/doc.json"]
    assert await keys(node, "manifest/") == ["manifest/doc.json"]
    assert await keys(node, "frag/do") == ["frag/doc/00000000.00"]
    assert await keys(node, "nothing/") == []
    await node.delete("frag/doc/00000000.00")
    await node.delete("frag/doc/00000000.00")  # missing: not an error
    with pytest.raises(BlobNotFoundError) as info:
        await node.get("frag/doc/00000000.00")
    assert info.value.node == "n1" and info.value.key == "frag/doc/00000000.00"


async def test_empty_blob(tmp_path: Path) -> None:
    node = LocalFolderNode("n1", tmp_path / "n1")
    await node.put("a", b"")
    assert await node.get("a") == b""


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "", "a\\b", "a b", "é", "x" * 513],
)
async def test_invalid_keys_are_refused_before_any_io(tmp_path: Path, key: str) -> None:
    for pack in (False, True):
        node = LocalFolderNode("n1", tmp_path / "n1", pack=pack)
        for op in (node.put(key, b"x"), node.get(key), node.stat(key), node.delete(key)):
            with pytest.raises(InvalidKeyError):
                await op
        assert os.listdir(tmp_path) == ["n1"]
        assert [p for p in (tmp_path / "n1").rglob("*") if p.is_file() and p.stat().st_size] == []


def _is_key(key: str) -> bool:
    """The key rule, naively (validate_key checks it with one regular expression)."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    parts = key.split("/")
    return 1 <= len(key) <= 512 and all(
        p not in ("", ".", "..") and set(p) <= allowed for p in parts
    )


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet="a./-_Z9 \\\né\x00", max_size=12)
    | st.text(alphabet="ab./", min_size=505, max_size=520)
)
def test_validate_key_is_the_key_rule(key: str) -> None:
    try:
        validate_key(key)
    except InvalidKeyError:
        assert not _is_key(key)
    else:
        assert _is_key(key)


async def test_symlink_planted_in_the_folder_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    node = LocalFolderNode("n1", tmp_path / "n1")
    (tmp_path / "n1" / "link").symlink_to(outside)
    (tmp_path / "n1" / "file").symlink_to(outside / "secret")
    with pytest.raises(InvalidKeyError, match="outside"):
        await node.get("link/secret")
    with pytest.raises(InvalidKeyError, match="outside"):
        await node.get("file")
    with pytest.raises(InvalidKeyError, match="outside"):
        await node.put("link/new", b"x")
    with pytest.raises(InvalidKeyError, match="outside"):
        await node.put("link/deeper/new", b"x")  # a folder made below the link: refused
    with pytest.raises(InvalidKeyError, match="outside"):
        await node.delete("link/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert await keys(node) == []  # symlinks are not blobs
    # A put over the planted link replaces the link itself, never the file it names.
    await node.put("file", b"mine")
    assert await node.get("file") == b"mine"
    assert not (tmp_path / "n1" / "file").is_symlink()
    assert (outside / "secret").read_bytes() == b"secret"


async def test_temp_files_are_invisible_and_cleaned_on_open(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = LocalFolderNode("n1", root)
    await node.put("a/b", b"1")
    (root / "a" / "b#deadbeef").write_bytes(b"partial write from a crash")
    assert await keys(node) == ["a/b"]
    LocalFolderNode("n1", root)
    assert sorted(p.name for p in (root / "a").iterdir()) == ["b"]


async def test_missing_root_is_node_unavailable_and_not_recreated(tmp_path: Path) -> None:
    root = tmp_path / "n1"
    node = LocalFolderNode("n1", root)
    await node.put("a", b"1")
    shutil.rmtree(root)
    for op in (node.put("a", b"x"), node.get("a"), node.stat("a"), node.delete("a")):
        with pytest.raises(NodeUnavailableError) as info:
            await op
        assert info.value.node == "n1" and info.value.key == "a"
    with pytest.raises(NodeUnavailableError):
        await keys(node)
    assert not root.exists()


async def test_a_file_where_a_folder_should_be_is_an_io_error(tmp_path: Path) -> None:
    node = LocalFolderNode("n1", tmp_path / "n1")
    (tmp_path / "n1" / "frag").write_bytes(b"not a folder")
    with pytest.raises(NodeIOError):
        await node.put("frag/doc/1", b"x")
    with pytest.raises(BlobNotFoundError):
        await node.get("frag/doc/1")


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="notary-tmpfs-"))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {r.stderr!r}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


async def test_disk_full_is_node_full_and_leaves_nothing(small_tmpfs: Path) -> None:
    node = LocalFolderNode("n1", small_tmpfs / "n1")
    await node.put("small", b"x" * 1000)
    with pytest.raises(NodeFullError) as info:
        await node.put("big", os.urandom(2 * 1024 * 1024))
    assert info.value.key == "big"
    assert sorted(p.name for p in (small_tmpfs / "n1").iterdir()) == ["small"]
    assert await node.get("small") == b"x" * 1000


async def test_read_only_filesystem_is_permission_error(small_tmpfs: Path) -> None:
    node = LocalFolderNode("n1", small_tmpfs / "n1")
    await node.put("a", b"1")
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)  # noqa: ASYNC221
    with pytest.raises(NodePermissionError):
        await node.put("b", b"2")
    with pytest.raises(NodePermissionError):
        await node.delete("a")
    assert await node.get("a") == b"1"


def test_permission_denied_for_an_unprivileged_process() -> None:
    # chmod does not stop root, so run the node in a child that drops to 'nobody' (after
    # importing: the interpreter's own files may not be readable by 'nobody').
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges to 'nobody' in a child")
    base = Path(tempfile.mkdtemp(prefix="notary-perm-"))
    try:
        base.chmod(0o755)
        root = base / "n1"
        root.mkdir()
        (root / "a").write_bytes(b"1")
        root.chmod(0o555)
        code = (
            "import asyncio, os, sys\n"
            "from pathlib import Path\n"
            "from storage.nodes.local import LocalFolderNode\n"
            "node = LocalFolderNode('n1', Path(sys.argv[1]))\n"
            "async def warm():\n"
            "    await node.put('w', b'w'); await node.get('w'); await node.delete('w')\n"
            "    try:\n"
            "        await node.get('w')\n"
            "    except Exception as e:\n"
            "        print(type(e).__name__, e.node, e.key)\n"
            "asyncio.run(warm())\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "async def main():\n"
            "    for op in (node.put('b', b'2'), node.delete('a')):\n"
            "        try:\n"
            "            await op\n"
            "            print('no error')\n"
            "        except Exception as e:\n"
            "            print(type(e).__name__, e.node, e.key)\n"
            "asyncio.run(main())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(root)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:3] == [
            "BlobNotFoundError n1 w",
            "NodePermissionError n1 b",
            "NodePermissionError n1 a",
        ]
        assert sorted(p.name for p in root.iterdir()) == ["a"]
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ENOENT, BlobNotFoundError),
        (errno.ENOSPC, NodeFullError),
        (errno.EDQUOT, NodeFullError),
        (errno.EACCES, NodePermissionError),
        (errno.EPERM, NodePermissionError),
        (errno.EROFS, NodePermissionError),
        (errno.ESTALE, NodeUnavailableError),
        (errno.EIO, NodeIOError),
    ],
)
def test_errno_mapping(code: int, kind: type) -> None:
    err = map_os_error("n1", "k", OSError(code, os.strerror(code)))
    assert type(err) is kind and err.node == "n1" and err.key == "k"


async def test_concurrent_large_writes_share_folder_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.nodes.local as local

    calls: list[str] = []
    real = local._fsync_dir_async

    async def counting(path: str) -> None:
        calls.append(path)
        await real(path)

    monkeypatch.setattr(local, "_fsync_dir_async", counting)
    node = LocalFolderNode("n1", tmp_path / "n1")
    big = local.SMALL_BLOB
    await node.put("d/first", b"0" * big)
    # The new folder d and the root, which gained d's entry, are both made durable.
    assert calls == [str(tmp_path / "n1" / "d"), str(tmp_path / "n1")]
    calls.clear()
    blobs = {f"d/{i:02d}": os.urandom(big + i) for i in range(40)}
    await asyncio.gather(*(node.put(k, v) for k, v in blobs.items()))
    for k, v in blobs.items():
        assert await node.get(k) == v
    # Every put waited for a folder fsync that started after its rename; most shared one.
    assert 1 <= len(calls) < len(blobs)
    assert set(calls) == {str(tmp_path / "n1" / "d")}
    assert node._dir_syncs == {}


async def test_concurrent_small_writes_share_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.nodes.local as local

    if local._SYNCFS is None:
        pytest.skip("no syncfs(2) here: small writes take the fsync path")
    synced: list[str] = []
    fsyncs: list[int] = []
    real_syncfs, real_fsync = local._syncfs_async, os.fsync

    async def counting_syncfs(folder: str) -> None:
        synced.append(folder)
        await real_syncfs(folder)

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(local, "_syncfs_async", counting_syncfs)
    monkeypatch.setattr(local.os, "fsync", counting_fsync)
    nodes = [LocalFolderNode(f"n{i}", tmp_path / f"n{i}") for i in range(3)]
    await nodes[0].put("d/first", b"0")
    assert len(synced) == 1 and fsyncs == []  # durable through the filesystem's commit
    synced.clear()
    blobs = {f"d/{i:02d}": os.urandom(1000 + i) for i in range(40)}
    await asyncio.gather(*(n.put(k, v) for k, v in blobs.items() for n in nodes))
    for n in nodes:
        for k, v in blobs.items():
            assert await n.get(k) == v
    # Every put waited for a syncfs that started after its rename; the nodes share a
    # filesystem, so 120 puts shared a few.
    assert 1 <= len(synced) < len(blobs) and fsyncs == []


async def test_a_failed_syncfs_fails_every_write_it_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.nodes.local as local

    if local._SYNCFS is None:
        pytest.skip("no syncfs(2) here")
    entered = asyncio.Event()
    release = asyncio.Event()
    outcomes = ["ok", "fail", "ok"]  # of the 1st, 2nd, 3rd syncfs
    calls: list[str] = []
    real = local._syncfs_async

    async def scripted(folder: str) -> None:
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if len(calls) == 1:
            entered.set()
            await release.wait()
        if outcome == "fail":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        await real(folder)

    monkeypatch.setattr(local, "_syncfs_async", scripted)
    node = LocalFolderNode("n1", tmp_path / "n1")
    first = asyncio.create_task(node.put("a", b"1"))
    await entered.wait()
    # b and c are queued while the first syncfs runs: the next group holds both.
    queued = [asyncio.create_task(node.put(k, b"2")) for k in ("b", "c")]
    group = local._group_writer(os.stat(tmp_path / "n1").st_dev)
    deadline = asyncio.get_running_loop().time() + 10
    while len(group.queue) < 2:
        assert asyncio.get_running_loop().time() < deadline, "the writes never queued"
        await asyncio.sleep(0.001)
    release.set()
    await first
    results = await asyncio.gather(*queued, return_exceptions=True)
    # The kernel reports a writeback error once: every write the failed syncfs covered
    # fails, none is acknowledged by a retry that would report nothing.
    assert [type(r) for r in results] == [NodeIOError, NodeIOError]
    assert calls == ["ok", "fail"]
    await node.put("d", b"3")  # a later write is covered by a fresh syncfs
    assert calls == ["ok", "fail", "ok"] and await node.get("d") == b"3"


def test_a_writer_killed_mid_write_leaves_the_old_blob_or_the_new_one(tmp_path: Path) -> None:
    """kill -9 a process that keeps rewriting a 16 MiB blob: never a torn blob."""
    root = tmp_path / "n1"
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from storage.nodes.local import LocalFolderNode\n"
        "node = LocalFolderNode('n1', Path(sys.argv[1]))\n"
        "async def main():\n"
        "    i = 0\n"
        "    while True:\n"
        "        await node.put('blob', bytes([i % 251]) * (16 * 1024 * 1024))\n"
        "        i += 1\n"
        "        print(i, flush=True)\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for _ in range(3):  # a few complete writes, then kill during a later one
            assert child.stdout.readline(), "writer died"
    finally:
        child.kill()
        child.wait(timeout=30)
    blob = (root / "blob").read_bytes()
    assert len(blob) == 16 * 1024 * 1024 and blob == blob[:1] * len(blob)
    LocalFolderNode("n1", root)  # reopening removes the temporary file of the torn write
    assert sorted(p.name for p in root.iterdir()) == ["blob"]
