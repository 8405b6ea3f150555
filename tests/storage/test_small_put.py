"""The small-document put path: ids vouched new, the digest reported early."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from storage import DigestMismatchError, WriteFailedError
from storage.manifest import manifest_key

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
