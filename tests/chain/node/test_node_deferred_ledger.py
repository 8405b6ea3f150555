"""DeferredLedger: acknowledged appends written a moment later; a crash in between is
repaired by replaying committed blocks (the log is behind, never ahead)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from chain.consensus.blocks import GENESIS, GENESIS_QC, Block, QuorumCert, payload_digest
from chain.consensus.ledger import apply_block, recover
from chain.consensus.store import MemoryStore
from chain.log import MerkleLog
from chain.merkle import CompactRange, leaf_hash, verify_inclusion
from chain.node.deferred_ledger import DeferredLedger


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
