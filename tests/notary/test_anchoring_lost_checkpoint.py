"""An entry whose exact tree size was never signed is still anchored.

The validators sign a checkpoint after each commit. A crash between a commit and the
completion of its checkpoint leaves that tree size unsigned for good: no validator signs
an old size again. The anchorer must then accept the next signed checkpoint (a larger
tree holds the entry as well); waiting for the exact size resubmitted the entry forever.

The failure is injected for real: the validators are stopped, the checkpoint of the
entry's tree size is deleted from every validator's store, and they are started again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chain.checkpoint import verify_checkpoint
from chain.errors import NotFoundError
from chain.merkle import verify_inclusion
from chain.node.inprocess import EmbeddedChain, start_embedded
from chain.node.results import entry_hash
from notary.anchoring import wait_signed
from notary.ledger_process import Covered, ProcessChain


async def _commit_then_lose_its_checkpoint(data_dir: Path) -> tuple[bytes, int]:
    chain = await start_embedded(data_dir, n=4, chain_id="test.lost-checkpoint")
    try:
        entry = b"the entry whose checkpoint is lost" + bytes(32)
        info = await chain.wait_committed((await chain.submit([entry])).entry_hashes[0], 20)
        await chain.checkpoint(info.tree_size, timeout=20)
    finally:
        await chain.stop()
    stores = [data_dir / f"embedded-v{i}" / "consensus.sqlite" for i in range(4)]
    for path in stores:
        assert path.is_file(), path
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM checkpoints WHERE tree_size >= ?", (info.tree_size,))
    return entry_hash(entry), info.tree_size


async def _sign_a_later_tree(chain: EmbeddedChain | ProcessChain) -> int:
    later = await chain.submit([b"a later entry" + bytes(32)])
    info = await chain.wait_committed(later.entry_hashes[0], 20)
    await chain.checkpoint(info.tree_size, timeout=20)
    return info.tree_size


async def test_embedded_ledger_accepts_a_larger_checkpoint(tmp_path: Path) -> None:
    lost, size = await _commit_then_lose_its_checkpoint(tmp_path)
    chain = await start_embedded(tmp_path)
    try:
        with pytest.raises(NotFoundError):
            await chain.checkpoint(size)
        later = await _sign_a_later_tree(chain)
        assert later > size
        with pytest.raises(NotFoundError):  # the exact size stays unsigned
            await chain.checkpoint(size, timeout=0.5)
        [outcome] = await wait_signed(chain, [lost], timeout=5)
        assert isinstance(outcome, Covered) and outcome.info.tree_size == size
        assert await chain.checkpoint_covering(size) == await chain.checkpoint(later)
    finally:
        await chain.stop()


async def test_child_process_ledger_accepts_a_larger_checkpoint(tmp_path: Path) -> None:
    lost, size = await _commit_then_lose_its_checkpoint(tmp_path)
    chain = await ProcessChain.start(tmp_path)
    try:
        later = await _sign_a_later_tree(chain)
        [outcome] = await wait_signed(chain, [lost], timeout=5, prove=[True])
        assert isinstance(outcome, Covered) and outcome.info.tree_size == size
        # What a receipt needs comes with it: the later checkpoint and a proof in its tree.
        assert outcome.checkpoint == await chain.checkpoint(later)
        assert outcome.tree_size == later and outcome.proof is not None
        verified = verify_checkpoint(outcome.checkpoint, chain.trust)
        verify_inclusion(
            outcome.info.leaf_index, later, lost, outcome.proof, verified.checkpoint.root
        )
    finally:
        await chain.close()
