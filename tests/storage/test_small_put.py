"""The small-document put path: ids vouched new, the digest reported early."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import (
    DigestMismatchError,
    DocumentStore,
    Manifest,
    UnrecoverableError,
    WriteFailedError,
)
from storage.catalog import read_copies
from storage.manifest import manifest_key
from storage.nodes import LocalFolderNode
from storage.nodes.pack import HEADER_BYTES

from .conftest import Cluster

SEG = 4096


async def test_a_new_id_skips_the_existence_check_and_others_are_still_refused(
    cluster: Cluster,
) -> None:
    store = cluster.store()
    stats = 0
    for node in store.pool.names:
        real = store.pool.node(node).stat

        async def counted(key: str, real=real):  # type: ignore[no-untyped-def]
            nonlocal stats
            stats += 1
            return await real(key)

        store.pool.node(node).stat = counted  # type: ignore[method-assign]
    doc_id = os.urandom(16).hex()
    data = os.urandom(SEG + 100)
    m = await store.put(data, doc_id=doc_id, new_id=True)
    assert stats == 0
    assert await store.read_bytes(await store.load_manifest(doc_id)) == data
    assert m.doc_id == doc_id
    # Without new_id, an existing id is refused and the document is untouched.
    with pytest.raises(WriteFailedError, match="already exists"):
        await store.put(b"other bytes", doc_id=doc_id)
    assert stats == 6
    assert await store.read_bytes(await store.load_manifest(doc_id)) == data
    # A generated id is new by construction: no look-up either.
    await store.put(b"generated")
    assert stats == 6


@pytest.mark.parametrize("size", [0, 10, 3 * SEG + 5])
async def test_on_digest_is_called_once_with_the_digest_before_the_put_returns(
    cluster: Cluster, size: int
) -> None:
    store = cluster.store()
    data = os.urandom(size)
    want = hashlib.sha256(data).hexdigest()
    seen: list[tuple[str, bool]] = []
    doc_id = os.urandom(16).hex()

    def on_digest(digest: str) -> None:
        asyncio.get_running_loop()  # on the event loop (raises in any other thread)
        copies = any(cluster.base.rglob(manifest_key(doc_id)))
        seen.append((digest, copies))

    m = await store.put(data, doc_id=doc_id, new_id=True, expected_sha256=want, on_digest=on_digest)
    assert seen == [(want, False)]  # once, before any manifest copy was written
    assert m.sha256 == want


async def test_on_digest_is_called_before_the_writes_are_done(cluster: Cluster) -> None:
    store = cluster.store()
    data = os.urandom(5 * SEG)
    seen: list[str] = []
    put = asyncio.create_task(store.put(data, new_id=True, on_digest=seen.append))
    while not seen:  # no sleep: each turn of the loop lets the put go on
        assert not put.done(), "the put returned before reporting its digest"
        await asyncio.sleep(0)
    assert not put.done()
    assert (await put).sha256 == seen[0] == hashlib.sha256(data).hexdigest()


async def test_on_digest_is_not_called_when_the_put_fails_before_the_digest(
    cluster: Cluster,
) -> None:
    store = cluster.store()
    seen: list[str] = []
    with pytest.raises(DigestMismatchError):
        await store.put(os.urandom(2 * SEG), expected_sha256="00" * 32, on_digest=seen.append)

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(SEG)
        raise ConnectionResetError("client went away")

    with pytest.raises(WriteFailedError, match="client went away"):
        await store.put(broken(), on_digest=seen.append)
    assert seen == []
    assert cluster.files() == []


async def test_an_on_digest_that_raises_fails_the_put_and_leaves_nothing(
    cluster: Cluster,
) -> None:
    store = cluster.store()

    def refuse(digest: str) -> None:
        raise RuntimeError(f"not anchoring {digest}")

    with pytest.raises(RuntimeError, match="not anchoring"):
        await store.put(os.urandom(3 * SEG), on_digest=refuse)
    assert cluster.files() == []
    assert [m async for m in store.recover_manifests()] == []


# ------------------------------------------------------------------ torn one-round puts


def packed_store(base: Path, create: bool = True) -> DocumentStore:
    return DocumentStore(
        [
            LocalFolderNode(
                f"node{i}", base / f"node{i}", zone=f"zone{i % 3}", pack=True, create=create
            )
            for i in range(6)
        ],
        segment_size=SEG,
    )


def record_start(node: LocalFolderNode, key: str) -> tuple[Path, int]:
    """The pack file holding ``key`` and where its record starts."""
    where = node.blob_location(key)
    assert where is not None, key
    pack, data_offset, _ = where
    return pack, data_offset - len(key) - HEADER_BYTES


async def crash_during_put(
    base: Path, *, lose_both: int, lose_fragment_only: int
) -> tuple[Manifest, bytes, Manifest, bytes]:
    """Store a two-segment document, then a one-segment one; then make it look as if the
    process crashed during the latter's one round: on the first ``lose_both`` nodes of its
    placement the group never became durable (the pack is cut where its records start),
    and on the next ``lose_fragment_only`` nodes only the fragment's record was lost (its
    header zeroed: the pack's scan skips it, the manifest copy after it survives)."""
    store = packed_store(base)
    old_data = os.urandom(SEG + 904)
    old = await store.put(old_data, new_id=True)
    data = os.urandom(SEG)
    torn = await store.put(data, new_id=True)
    assert torn.one_round and not old.one_round
    for entry in torn.segments[0].fragments:
        node = store.pool.node(entry.node)
        assert isinstance(node, LocalFolderNode)
        # One group: the manifest copy's record right after the fragment's.
        pack, start = record_start(node, entry.key)
        assert record_start(node, manifest_key(torn.doc_id)) == (
            pack,
            start + HEADER_BYTES + len(entry.key) + entry.size,
        )
        if entry.index < lose_both:
            os.truncate(pack, start)
        elif entry.index < lose_both + lose_fragment_only:
            with pack.open("r+b") as f:
                f.seek(start)
                f.write(bytes(HEADER_BYTES))
                os.fsync(f.fileno())
    await store.close()
    return old, old_data, torn, data


async def test_a_put_torn_by_a_crash_is_never_taken_for_a_document(tmp_path: Path) -> None:
    old, old_data, torn, _ = await crash_during_put(tmp_path, lose_both=3, lose_fragment_only=1)
    store = packed_store(tmp_path)
    # Three manifest copies survive (the fourth node kept its copy, not its fragment)...
    assert len((await read_copies(store.pool, torn.doc_id)).valid) == 3
    assert await store.load_manifest(torn.doc_id) == torn
    # ...with two fragments: unreadable, and never read as anything else.
    with pytest.raises(UnrecoverableError):
        await store.read_bytes(torn)
    # Recovery from the nodes alone lists only the acknowledged document.
    assert [m async for m in store.recover_manifests()] == [old]
    report = await store.scrub()
    assert report.documents_torn == 1 and report.documents_unrecoverable == 0
    assert report.segments_unrecoverable == 0 and report.fragments_repaired == 0
    assert len(report.problems) == 1 and torn.doc_id in report.problems[0]
    assert "torn" in report.problems[0]
    assert len((await read_copies(store.pool, torn.doc_id)).valid) == 3  # left as found
    assert await store.read_bytes(old) == old_data


async def test_a_torn_put_that_kept_k_fragments_is_a_readable_document(tmp_path: Path) -> None:
    _, _, torn, data = await crash_during_put(tmp_path, lose_both=1, lose_fragment_only=1)
    store = packed_store(tmp_path)
    assert await store.read_bytes(torn) == data
    assert torn in [m async for m in store.recover_manifests()]
    report = await store.scrub()
    assert report.documents_torn == 0 and report.fragments_repaired == 2
    assert report.healthy, report.problems
    assert await store.read_bytes(await store.load_manifest(torn.doc_id)) == data


async def test_fragments_lost_on_unreachable_nodes_or_by_two_round_puts_are_losses(
    tmp_path: Path,
) -> None:
    store = packed_store(tmp_path)
    small = await store.put(os.urandom(100), new_id=True)
    large = await store.put(os.urandom(SEG + 1), new_id=True)
    # The two-segment document loses three fragments of its first segment for good.
    for entry in large.segments[0].fragments[:3]:
        await store.pool.node(entry.node).delete(entry.key)
    await store.close()
    # Three nodes of the small document's placement are unreachable: its fragments there
    # may still exist, so it is not taken for a torn put.
    for entry in small.segments[0].fragments[:3]:
        shutil.move(tmp_path / entry.node, tmp_path / f"away-{entry.node}")
    report = await packed_store(tmp_path, create=False).scrub(repair=False)
    assert report.documents_torn == 0
    assert report.documents_unrecoverable == 2, report


async def test_a_failed_one_round_put_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    store = cluster.store()
    shutil.rmtree(cluster.root("node3"))
    with pytest.raises(WriteFailedError, match="node3"):
        await store.put(os.urandom(SEG), new_id=True)
    assert cluster.files() == []  # the copies that landed beside the fragments are gone
    packed = packed_store(tmp_path / "packed")
    victim = packed.pool.node("node2")
    assert isinstance(victim, LocalFolderNode)
    shutil.rmtree(victim.root)
    with pytest.raises(WriteFailedError, match="node2"):
        await packed.put(os.urandom(100), new_id=True)
    assert [m async for m in packed.recover_manifests()] == []
    for node in packed.pool.names:
        if node != "node2":
            assert [k async for k in packed.pool.node(node).list("")] == []


async def test_created_is_the_clock_in_utc_for_every_put(cluster: Cluster) -> None:
    # ``created`` is made once per second of the clock; any other time gets its own.
    from datetime import UTC, datetime, timedelta, timezone

    plus2 = timezone(timedelta(hours=2))
    times = [
        datetime(2026, 1, 2, 3, 4, 5, 100, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC),
        datetime(2026, 1, 2, 5, 4, 5, 500, tzinfo=plus2),  # the same second, elsewhere
        datetime(2026, 1, 2, 5, 4, 6, tzinfo=plus2),
        datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # before the epoch
        datetime(1970, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),
    ]
    ticks = iter(times)
    store = cluster.store(clock=lambda: next(ticks))
    created = [(await store.put(b"x", new_id=True)).created for _ in times]
    assert created == [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    assert created[2] == "2026-01-02T03:04:05Z" and created[3] == "2026-01-02T03:04:06Z"
