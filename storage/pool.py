"""The node pool: nodes by name, zones, and every node call with a timeout.

All node I/O of the document store goes through :class:`NodePool`, so a node
that hangs becomes a NodeUnavailableError after ``node_timeout`` seconds and a
backend that leaks a foreign exception still yields a storage NodeError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from storage.errors import ConfigError, NodeError, NodeIOError, NodeUnavailableError, StorageError
from storage.nodes.base import BlobStat, StorageNode

_T = TypeVar("_T")


class NodePool:
    """The storage nodes a document store may use."""

    def __init__(self, nodes: Sequence[StorageNode], node_timeout: float) -> None:
        """Precondition-checked pool: names must be unique; raises ConfigError otherwise."""
        if node_timeout <= 0:
            raise ConfigError("node_timeout must be positive")
        by_name: dict[str, StorageNode] = {}
        for node in nodes:
            if node.name in by_name:
                raise ConfigError(f"two nodes are named {node.name!r}")
            by_name[node.name] = node
        self._nodes = by_name
        self.zones: Mapping[str, str] = {n.name: n.zone for n in nodes}
        self.timeout = node_timeout

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def names(self) -> list[str]:
        """Node names in pool order."""
        return list(self._nodes)

    def has(self, name: str) -> bool:
        """True if a node of that name is in the pool."""
        return name in self._nodes

    def node(self, name: str) -> StorageNode:
        """The node called ``name``; NodeUnavailableError if the pool has none."""
        try:
            return self._nodes[name]
        except KeyError:
            raise NodeUnavailableError(name, None, "node is not in the pool") from None

    async def _call(self, name: str, key: str | None, op: Awaitable[_T]) -> _T:
        try:
            # asyncio.timeout runs ``op`` in the caller's task: wait_for would start a
            # task of its own, which costs every node call two more turns of the loop.
            async with asyncio.timeout(self.timeout):
                return await op
        except TimeoutError:
            raise NodeUnavailableError(name, key, f"timed out after {self.timeout:g} s") from None
        except StorageError:
            raise
        except Exception as e:  # a backend bug must not escape as a foreign error
            raise NodeIOError(name, key, f"unexpected {type(e).__name__}: {e}") from e

    async def get(self, name: str, key: str) -> bytes:
        """Read one blob from node ``name``."""
        return await self._call(name, key, self.node(name).get(key))

    async def put(self, name: str, key: str, data: bytes) -> None:
        """Write one blob to node ``name``."""
        await self._call(name, key, self.node(name).put(key, data))

    async def stat(self, name: str, key: str) -> BlobStat | None:
        """Stat one blob on node ``name``."""
        return await self._call(name, key, self.node(name).stat(key))

    async def put_all(self, writes: Sequence[tuple[str, str, bytes]]) -> list[BaseException | None]:
        """Write (node, key, data) triples concurrently: None for each success, else its
        error (as ``put`` would raise it). Cancellation-safe: if the
        caller is cancelled, the writes already started are waited for first, so a cleanup
        that follows never races a write still landing on a node."""
        calls: list[tuple[str, str, asyncio.Future[None] | BaseException]] = []
        for name, key, data in writes:
            try:
                node = self.node(name)
                # A node that can queue the write at once hands back its future: no task
                # (and no coroutine) per write.
                put_soon = getattr(node, "put_soon", None)
                started = None if put_soon is None else put_soon(key, data)
                if started is None:
                    started = asyncio.ensure_future(node.put(key, data))
            except Exception as e:
                calls.append((name, key, _as_node_error(name, key, e)))
            else:
                calls.append((name, key, started))
        return await self._settle(calls)

    async def stat_all(
        self, names: Sequence[str], key: str
    ) -> list[BlobStat | BaseException | None]:
        """Stat ``key`` on each named node concurrently: each result or error."""
        calls: list[tuple[str, str, asyncio.Future[BlobStat | None] | BaseException]] = []
        for name in names:
            try:
                calls.append((name, key, asyncio.ensure_future(self.node(name).stat(key))))
            except Exception as e:
                calls.append((name, key, _as_node_error(name, key, e)))
        return await self._settle(calls)

    async def _settle(
        self, calls: Sequence[tuple[str, str, asyncio.Future[_T] | BaseException]]
    ) -> list[_T | BaseException]:
        """Wait for node calls already started (each a future, or the error it failed
        with at once) under one shared timeout (one timer for the lot, not one per call:
        a small document makes 12 node calls): each result, or the error ``_call`` would
        raise for it. Futures still running at the timeout are cancelled."""
        started = [f for _, _, f in calls if isinstance(f, asyncio.Future)]
        late: set[asyncio.Future[_T]] = set()
        if started:
            try:
                await _wait_all(started, self.timeout)
            except asyncio.CancelledError:
                await asyncio.wait(started)
                raise
            late = {f for f in started if not f.done()}
            if late:
                for f in late:
                    f.cancel()
                await asyncio.wait(late)
        results: list[_T | BaseException] = []
        for name, key, call in calls:
            if not isinstance(call, asyncio.Future):
                results.append(call)
            elif call in late:
                results.append(
                    NodeUnavailableError(name, key, f"timed out after {self.timeout:g} s")
                )
            else:
                outcome: _T | BaseException = _outcome(name, key, call)
                results.append(outcome)
        return results

    async def delete(self, name: str, key: str) -> None:
        """Delete one blob on node ``name``."""
        await self._call(name, key, self.node(name).delete(key))

    async def list_keys(self, name: str, prefix: str) -> list[str]:
        """All keys under ``prefix`` on node ``name`` (the whole listing has one timeout)."""
        node = self.node(name)

        async def collect() -> list[str]:
            return [key async for key in node.list(prefix)]

        return await self._call(name, None, collect())

    async def delete_all(
        self, keys: Sequence[tuple[str, str]], concurrency: int = 32
    ) -> list[NodeError]:
        """Delete (node, key) pairs concurrently; return the failures (missing is no failure).

        Once a node proves unreachable its remaining keys are skipped and
        reported with that node's error: each attempt would only wait for
        another timeout.
        """
        gate = asyncio.Semaphore(concurrency)
        unreachable: dict[str, NodeUnavailableError] = {}

        async def one(name: str, key: str) -> NodeError | None:
            async with gate:
                if name in unreachable:
                    return unreachable[name]
                try:
                    await self.delete(name, key)
                    return None
                except NodeUnavailableError as e:
                    unreachable[name] = e
                    return e
                except NodeError as e:
                    return e

        results = await asyncio.gather(*(one(n, k) for n, k in keys))
        return [r for r in results if r is not None]

    async def delete_quietly(self, keys: Sequence[tuple[str, str]], concurrency: int = 32) -> int:
        """Best-effort deletion of (node, key) pairs; returns how many deletions failed."""
        return len(await self.delete_all(keys, concurrency))

    async def close(self) -> None:
        """Close every node."""
        await asyncio.gather(*(n.close() for n in self._nodes.values()), return_exceptions=True)


async def _wait_all(futures: Sequence[asyncio.Future[Any]], timeout: float) -> None:
    """Return once every future is done or ``timeout`` seconds have passed: asyncio.wait
    without its sets and per-call checks (one callback per future, one timer)."""
    pending = [f for f in futures if not f.done()]
    if not pending:
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(pending)

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not waiter.done():
            waiter.set_result(None)

    for f in pending:
        f.add_done_callback(one_done)
    timer = loop.call_later(timeout, _release, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        if left:
            for f in pending:
                f.remove_done_callback(one_done)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _as_node_error(name: str, key: str, error: Exception) -> Exception:
    """A storage error as it is; anything else (a backend bug) as a NodeIOError, so that
    no foreign error escapes the pool."""
    if isinstance(error, StorageError):
        return error
    wrapped = NodeIOError(name, key, f"unexpected {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


def _outcome(name: str, key: str, done: asyncio.Future[_T]) -> _T | BaseException:
    if done.cancelled():
        return asyncio.CancelledError()
    error = done.exception()
    if error is None:
        return done.result()
    return _as_node_error(name, key, error) if isinstance(error, Exception) else error
