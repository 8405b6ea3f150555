"""NodePool.put_all and stat_all: one shared timeout, errors mapped, whether a node hands
back a future (put_soon) or runs a coroutine per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage.errors import BlobNotFoundError, NodeIOError, NodeUnavailableError
from storage.nodes.base import BlobStat
from storage.pool import NodePool


class ScriptedNode:
    """A node whose calls do what ``behaviour`` says: "ok", "fail" (a storage error),
    "bug" (a foreign error), "hang" (answers only when the test settles ``pending``); with
    ``soon``, puts go through put_soon (the future, or "bug" raised at once)."""

    def __init__(self, name: str, behaviour: str, soon: bool) -> None:
        self.name = name
        self.zone = "z"
        self.behaviour = behaviour
        self.soon = soon
        self.cancelled = 0
        self.stored: dict[str, bytes] = {}
        self.pending: list[asyncio.Future[None]] = []

    def put_soon(self, key: str, data: bytes) -> asyncio.Future[None] | None:
        if not self.soon:
            return None
        if self.behaviour == "bug" and key.startswith("now"):
            raise RuntimeError("bug before any I/O")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(self._count_cancel)
        if self.behaviour == "ok":
            self.stored[key] = data
            done.set_result(None)
        elif self.behaviour == "fail":
            done.set_exception(BlobNotFoundError(self.name, key, "scripted"))
        elif self.behaviour == "bug":
            done.set_exception(RuntimeError("bug"))
        else:
            self.pending.append(done)
        return done

    def _count_cancel(self, done: asyncio.Future[None]) -> None:
        self.cancelled += done.cancelled()

    async def _act(self, key: str) -> None:
        if self.behaviour == "fail":
            raise BlobNotFoundError(self.name, key, "scripted")
        if self.behaviour == "bug":
            raise RuntimeError("bug")
        if self.behaviour == "hang":
            answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.pending.append(answer)
            try:
                await answer
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    async def put(self, key: str, data: bytes) -> None:
        await self._act(key)
        self.stored[key] = data

    async def stat(self, key: str) -> BlobStat | None:
        await self._act(key)
        return BlobStat(key, len(self.stored[key])) if key in self.stored else None

    async def get(self, key: str) -> bytes:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        raise NotImplementedError
        yield prefix  # an async generator

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("soon", [False, True])
async def test_put_all_answers_each_write_and_times_out_the_hung_ones_together(
    soon: bool,
) -> None:
    nodes = [ScriptedNode(b, b, soon) for b in ("ok", "fail", "bug", "hang")]
    pool = NodePool(nodes, node_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await pool.put_all(
        [(n.name, "k/1", b"x") for n in nodes]
        + [("hang", "k/2", b"y"), ("absent", "k/3", b"z"), ("bug", "now/1", b"w")]
    )
    assert loop.time() - started < 3  # one shared timeout, not one per hung write
    ok, fail, bug, hang, hang2, absent, bug_now = results
    assert ok is None and nodes[0].stored == {"k/1": b"x"}
    assert isinstance(fail, BlobNotFoundError) and fail.node == "fail"
    # A backend bug never escapes as a foreign error, whenever it happens.
    assert isinstance(bug, NodeIOError) and "unexpected RuntimeError" in str(bug)
    assert isinstance(bug.__cause__, RuntimeError)
    for late, key in ((hang, "k/1"), (hang2, "k/2")):
        assert isinstance(late, NodeUnavailableError) and "timed out" in str(late)
        assert late.node == "hang" and late.key == key
    assert nodes[3].cancelled == 2  # the hung calls were cancelled, not left running
    assert isinstance(absent, NodeUnavailableError) and "not in the pool" in str(absent)
    if soon:
        assert isinstance(bug_now, NodeIOError) and "before any I/O" in str(bug_now)
    else:
        assert isinstance(bug_now, NodeIOError)


async def test_stat_all_answers_each_node() -> None:
    nodes = [ScriptedNode(b, b, soon=False) for b in ("ok", "fail", "bug", "hang")]
    nodes[0].stored["k"] = b"abc"
    pool = NodePool(nodes, node_timeout=0.3)
    ok, fail, bug, hang, absent = await pool.stat_all([*(n.name for n in nodes), "absent"], "k")
    assert ok == BlobStat("k", 3)
    assert isinstance(fail, BlobNotFoundError)
    assert isinstance(bug, NodeIOError) and isinstance(hang, NodeUnavailableError)
    assert isinstance(absent, NodeUnavailableError)
    assert await pool.stat_all([], "k") == [] and await pool.put_all([]) == []


async def test_a_cancelled_put_all_waits_for_the_writes_it_started() -> None:
    nodes = [ScriptedNode("soon", "hang", soon=True), ScriptedNode("task", "hang", soon=False)]
    pool = NodePool(nodes, node_timeout=30)
    call = asyncio.ensure_future(pool.put_all([("soon", "k", b"x"), ("task", "k", b"x")]))
    for _ in range(3):  # turns of the loop: put_all starts both, the task runs its node call
        await asyncio.sleep(0)
    assert all(n.pending for n in nodes)
    call.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not call.done()  # still waiting for its writes: a cleanup would race them
    for n in nodes:
        n.pending[0].set_result(None)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert [n.cancelled for n in nodes] == [0, 0]
