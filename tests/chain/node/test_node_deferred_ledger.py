"""DeferredLedger: acknowledged appends written a moment later; a crash in between is
repaired by replaying committed blocks (the log is behind, never ahead)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chain.consensus.blocks import GENESIS, GENESIS_QC, Block, QuorumCert, payload_digest
from chain.consensus.ledger import apply_block, recover
from chain.consensus.store import MemoryStore
from chain.errors import LogError, StoreError
from chain.log import MerkleLog
from chain.merkle import CompactRange, leaf_hash, verify_inclusion
from chain.node.deferred_ledger import DeferredLedger
from tests.chain.node.conftest import wait_for


def _blocks(n: int, per_block: int, rng: random.Random) -> list[Block]:
    out, parent, frontier = [], GENESIS, CompactRange.empty()
    for h in range(1, n + 1):
        entries = tuple(rng.randbytes(40) for _ in range(per_block))
        frontier = frontier.append([leaf_hash(e) for e in entries])
        qc = GENESIS_QC if h == 1 else QuorumCert(parent.view, parent.hash, ((0, bytes(64)),))
        block = Block(
            h,
            h,
            parent.hash,
            0,
            h,
            payload_digest(entries),
            frontier.size,
            frontier.root(),
            qc,
            entries=entries,
        )
        out.append(block)
        parent = block
    return out


def test_appends_are_acknowledged_then_written_and_reads_flush(tmp_path: Path) -> None:
    queued: list[Callable[[], None]] = []
    ledger = DeferredLedger(MerkleLog.open(tmp_path / "log"), queued.append)
    store = MemoryStore()
    blocks = _blocks(3, 5, random.Random(1))
    for b in blocks[:2]:
        apply_block(store, ledger, b)  # checks (size, root) against the block
    assert ledger.size == 10 and ledger.log.size == 0 and ledger.pending == 10
    assert len(queued) == 1  # one scheduled flush for both blocks
    queued.pop()()
    assert ledger.log.size == 10 and ledger.pending == 0
    apply_block(store, ledger, blocks[2])
    assert ledger.log.size == 10
    # A read sees everything committed, without waiting for the scheduled flush.
    proof = ledger.inclusion_proof(12, 15)
    verify_inclusion(12, 15, leaf_hash(blocks[2].entries[2]), proof, blocks[2].root)
    assert ledger.leaf_index(leaf_hash(blocks[2].entries[4])) == 14
    ledger.close()


def test_crash_before_the_write_is_replayed_on_restart(tmp_path: Path) -> None:
    store = MemoryStore()  # plays the durable consensus store
    blocks = _blocks(4, 3, random.Random(2))
    ledger = DeferredLedger(MerkleLog.open(tmp_path / "log"), lambda fn: None)
    apply_block(store, ledger, blocks[0])
    ledger.flush()
    for b in blocks[1:]:
        apply_block(store, ledger, b)  # committed in the store, never written: crash now
    ledger.log.close()

    reopened = MerkleLog.open(tmp_path / "log")
    assert reopened.size == 3  # behind the chain, never ahead
    again = DeferredLedger(reopened, lambda fn: None)
    head = recover(store, again)
    assert head.hash == blocks[-1].hash
    again.flush()
    assert reopened.size == 12 and reopened.root() == blocks[-1].root
    again.close()


async def test_flush_runs_on_the_loop_and_failures_are_reported(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    log = MerkleLog.open(tmp_path / "log")
    ledger = DeferredLedger(log, loop.call_soon, on_error=errors.append)
    blocks = _blocks(2, 4, random.Random(3))
    apply_block(MemoryStore(), ledger, blocks[0])
    await asyncio.sleep(0)  # the scheduled flush runs
    assert log.size == 4
    log.close()  # the disk goes away under the node
    apply_block(MemoryStore(), ledger, blocks[1])
    await asyncio.sleep(0)
    assert len(errors) == 1 and ledger.failed is not None


def _async(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


class _GatedExecutor(ThreadPoolExecutor):
    """A real one-thread pool whose writes wait until ``gate`` is set (a slow disk)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.gate = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            assert self.gate.wait(30)
            return fn(*args, **kwargs)

        return super().submit(run)


async def test_writes_in_a_worker_thread_leave_reads_answering(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    log = MerkleLog.open(tmp_path / "log")
    blocks = _blocks(3, 5, random.Random(4))
    with _GatedExecutor() as writer:
        ledger = DeferredLedger(log, loop.call_soon_threadsafe, executor=writer)
        store = MemoryStore()
        apply_block(store, ledger, blocks[0])
        await asyncio.sleep(0)  # the write of block 1 starts and waits at the gate
        apply_block(store, ledger, blocks[1])  # pending behind the write in flight
        assert log.size == 0 and ledger.size == 10 and ledger.pending == 10
        # Lookups and entries answer from what is not yet written, without waiting.
        assert ledger.leaf_index(leaf_hash(blocks[1].entries[3])) == 8
        assert ledger.leaf_index(leaf_hash(b"never appended")) is None
        assert ledger.entry(2) == blocks[0].entries[2]
        writer.gate.set()
        await wait_for(_async(lambda: ledger.pending == 0), 10)
        assert log.size == 10 and log.root() == blocks[1].root  # two writes, in order
        assert ledger.leaf_index(leaf_hash(blocks[1].entries[3])) == 8
        # A proof over entries not yet written waits for them.
        writer.gate.clear()
        apply_block(store, ledger, blocks[2])
        await asyncio.sleep(0)
        threading.Timer(0.2, writer.gate.set).start()
        proof = ledger.inclusion_proof(12, 15)
        verify_inclusion(12, 15, leaf_hash(blocks[2].entries[2]), proof, blocks[2].root)
        ledger.close()


async def test_a_failed_background_write_halts_the_ledger(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    log = MerkleLog.open(tmp_path / "log")
    blocks = _blocks(1, 4, random.Random(5))
    with ThreadPoolExecutor(max_workers=1) as writer:
        ledger = DeferredLedger(
            log, loop.call_soon_threadsafe, on_error=errors.append, executor=writer
        )
        # The disk stops taking writes under the node: the write fails for real (EBADF).
        os.close(log._fd)
        log._fd = os.open(tmp_path / "log" / "nodes", os.O_RDONLY)
        apply_block(MemoryStore(), ledger, blocks[0])
        await wait_for(_async(lambda: bool(errors)), 10)
    assert len(errors) == 1 and ledger.failed is not None
    with pytest.raises(LogError):
        apply_block(MemoryStore(), ledger, blocks[0])
    ledger.close()


async def test_a_root_the_entries_do_not_give_fails_the_write(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    log = MerkleLog.open(tmp_path / "log")
    good = _blocks(1, 4, random.Random(6))[0]
    bad = dataclasses.replace(good, root=bytes(32))  # a chain/log disagreement
    with ThreadPoolExecutor(max_workers=1) as writer:
        ledger = DeferredLedger(
            log, loop.call_soon_threadsafe, on_error=errors.append, executor=writer
        )
        assert ledger.append(bad.entries, bad.leaf_hashes, (4, bad.root)) == (4, bad.root)
        await wait_for(_async(lambda: bool(errors)), 10)
    assert log.size == 0, "nothing reaches the disk"
    assert "expected size 4" in str(errors[0]) and ledger.failed is not None
    ledger.close()


async def test_the_barrier_runs_on_the_writer_before_each_write(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    log = MerkleLog.open(tmp_path / "log")
    blocks = _blocks(3, 4, random.Random(7))
    calls: list[tuple[str, int]] = []

    def barrier() -> None:  # what the log holds when the barrier runs: nothing new yet
        calls.append((threading.current_thread().name, log.size))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as writer:
        ledger = DeferredLedger(
            log, loop.call_soon_threadsafe, executor=writer, before_write=barrier
        )
        apply_block(MemoryStore(), ledger, blocks[0])
        await wait_for(_async(lambda: ledger.pending == 0), 10)
        apply_block(MemoryStore(), ledger, blocks[1])
        await wait_for(_async(lambda: ledger.pending == 0), 10)
    assert [size for _, size in calls] == [0, 4]
    assert all(name.startswith("writer") for name, _ in calls)
    apply_block(MemoryStore(), ledger, blocks[2])
    ledger.inclusion_proof(0, 12)  # a synchronous flush runs the barrier too
    assert calls[-1] == (threading.current_thread().name, 8)
    ledger.close()


async def test_a_failing_barrier_keeps_the_entries_off_the_log(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    log = MerkleLog.open(tmp_path / "log")
    blocks = _blocks(1, 4, random.Random(8))

    def barrier() -> None:
        raise StoreError("consensus.sqlite: sync failed: [Errno 5] I/O error")

    with ThreadPoolExecutor(max_workers=1) as writer:
        ledger = DeferredLedger(
            log,
            loop.call_soon_threadsafe,
            on_error=errors.append,
            executor=writer,
            before_write=barrier,
        )
        apply_block(MemoryStore(), ledger, blocks[0])
        await wait_for(_async(lambda: bool(errors)), 10)
    assert log.size == 0, "the entries never reach the log ahead of their marker"
    assert isinstance(errors[0], LogError) and "sync failed" in str(errors[0])
    assert ledger.failed is not None
    ledger.log.close()
