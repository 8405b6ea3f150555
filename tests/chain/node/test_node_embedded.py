"""The embedded mode: n validators in one process, real Merkle logs and SQLite stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.checkpoint import parse_checkpoint, verify_checkpoint
from chain.consensus.mempool import MempoolConfig
from chain.errors import MempoolFullError
from chain.merkle import verify_consistency, verify_inclusion
from chain.node.inprocess import start_embedded
from chain.node.results import EntryError, entry_hash
from chain.note import parse_note
from chain.trust import TrustFile


def _root(note: str) -> bytes:
    return parse_checkpoint(parse_note(note).text).root


async def test_commits_proves_and_survives_restart(tmp_path: Path) -> None:
    chain = await start_embedded(tmp_path, n=4, chain_id="test.embedded")
    try:
        entries = [b"entry-%d" % i + bytes(100) for i in range(50)]
        result = await chain.submit(entries)
        assert result.entry_hashes[7] == entry_hash(entries[7])
        info = await chain.wait_committed(result.entry_hashes[-1], timeout=20)
        note = await chain.checkpoint(info.tree_size, timeout=20)
        trust = TrustFile.load(chain.trust_path)
        verified = verify_checkpoint(note, trust)
        assert verified.checkpoint.size == info.tree_size == 50
        proof = await chain.inclusion_proof(info.tree_size, entry_hash=result.entry_hashes[7])
        assert proof.leaf_index == 7
        verify_inclusion(
            proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.hashes, _root(note)
        )
        status = await chain.status()
        assert status["tree_size"] >= 50
    finally:
        await chain.stop()

    # Same directory: same keys and trust file, the log and chain recovered from disk.
    again = await start_embedded(tmp_path, n=4, chain_id="ignored-on-restart")
    try:
        assert again.trust == trust
        status = await again.status()
        assert status["tree_size"] == 50
        old = await again.inclusion_proof(50, entry_hash=result.entry_hashes[3])
        verify_inclusion(old.leaf_index, 50, old.leaf_hash, old.hashes, _root(note))
        # Re-submitting a committed entry does not append it twice.
        dup = await again.submit([entries[0]])
        assert dup.already_committed == 1 and dup.accepted == 0
        more = await again.submit([b"after restart"])
        info2 = await again.wait_committed(more.entry_hashes[0], timeout=20)
        assert info2.leaf_index == 50 and info2.block_height > info.block_height
        note2 = await again.checkpoint(info2.tree_size, timeout=20)
        verify_checkpoint(note2, trust)
        cons = await again.consistency_proof(50, info2.tree_size)
        verify_consistency(50, info2.tree_size, _root(note), _root(note2), cons.hashes)
    finally:
        await again.stop()


async def test_back_pressure_and_bad_entries(tmp_path: Path) -> None:
    chain = await start_embedded(
        tmp_path, n=4, mempool_config=MempoolConfig(max_entries=10, batch_entries=5)
    )
    try:
        with pytest.raises(EntryError):
            await chain.submit([b""])
        with pytest.raises(MempoolFullError):
            await chain.submit([b"x%d" % i for i in range(11)])
    finally:
        await chain.stop()
