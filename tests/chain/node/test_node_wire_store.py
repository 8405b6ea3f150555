"""The peer wire codec and the SQLite consensus store."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.consensus.blocks import GENESIS, GENESIS_QC, Block, Limits, QuorumCert, TimeoutCert
from chain.consensus.blocks import payload_digest as digest
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    CheckpointVote,
    Message,
    Proposal,
    Timeout,
    Vote,
)
from chain.consensus.safety import SafetyState
from chain.consensus.sqlite_store import SqliteStore
from chain.merkle import CompactRange, leaf_hash
from chain.node.wire import (
    ForwardedEntries,
    decode_batch,
    decode_frame,
    decode_message,
    encode_batch,
    encode_entries,
    encode_message,
    take_block_bytes,
)

RNG = random.Random(7)
LIMITS = Limits()


def _b(n: int) -> bytes:
    return RNG.randbytes(n)


def _qc(view: int) -> QuorumCert:
    return QuorumCert(view, _b(32), tuple((i, _b(64)) for i in range(3)))


def _chain(length: int, per_block: int) -> list[Block]:
    blocks, parent, frontier = [], GENESIS, CompactRange.empty()
    for h in range(1, length + 1):
        entries = tuple(b"e%d-%d" % (h, i) for i in range(per_block))
        frontier = frontier.append([leaf_hash(e) for e in entries])
        qc = GENESIS_QC if h == 1 else QuorumCert(parent.view, parent.hash, ((0, _b(64)),))
        block = Block(
            h,
            h,
            parent.hash,
            h % 4,
            1000 * h,
            digest(entries),
            frontier.size,
            frontier.root(),
            qc,
            entries=entries,
        )
        blocks.append(block)
        parent = block
    return blocks


def _messages() -> list[Message]:
    blocks = _chain(3, 5)
    tc = TimeoutCert(9, tuple((i, 4, _b(64)) for i in range(3)), _qc(4))
    return [
        Proposal(blocks[0], _b(64)),
        Proposal(Block(5, 10, _b(32), 2, 7, _b(32), 0, _b(32), _qc(4), tc), _b(64)),
        Vote(3, _b(32), 1, _b(64)),
        Timeout(10, _qc(4), tc, 2, _b(64)),
        Timeout(10, _qc(4), None, 2, _b(64)),
        CheckpointVote(3, 15, _b(32), 0, _b(64)),
        BlockRequest(_b(32), 64, 2),
        BlockResponse(tuple(reversed(blocks))),
    ]


@pytest.mark.parametrize("message", _messages(), ids=lambda m: type(m).__name__)
def test_wire_round_trip(message: Message) -> None:
    frame = encode_message(message)
    assert decode_message(frame, LIMITS) == message
    assert decode_frame(frame, LIMITS) == message
    with pytest.raises(InvalidMessageError):
        decode_message(frame[:-1], LIMITS)  # truncated
    with pytest.raises(InvalidMessageError):
        decode_message(frame + b"\0", LIMITS)  # trailing garbage


def test_wire_forwarded_entries_and_batches() -> None:
    entries = (b"a", b"bb" * 50)
    assert decode_frame(encode_entries(entries), LIMITS) == ForwardedEntries(entries)
    frames = [encode_message(m) for m in _messages()]
    assert decode_batch(encode_batch(frames), 1 << 20) == frames
    with pytest.raises(InvalidMessageError):
        decode_message(b"\x07" + bytes(10), LIMITS)  # unknown kind
    with pytest.raises(InvalidMessageError):
        decode_message(encode_entries(entries), LIMITS)  # not a consensus message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 6))
def test_wire_garbage_only_raises_invalid_message(data: bytes, kind: int) -> None:
    for frame in (data, bytes([kind + 1]) + data):
        with contextlib.suppress(InvalidMessageError):
            decode_frame(frame, LIMITS)


def test_sqlite_store_survives_reopen(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path)
    assert store.load_safety() is None and store.committed_head() is None
    state = SafetyState(last_voted_view=7, last_proposed_view=5, high_qc=_qc(6))
    store.save_safety(state)
    blocks = _chain(4, 3)
    for b in blocks:
        store.put_block(b)
    store.put_block(blocks[0])  # idempotent
    for b in blocks[:3]:
        store.set_committed(b)
    store.put_checkpoint(6, "note-6\n")
    store.put_checkpoint(9, "note-9\n")
    store.close()

    again = SqliteStore.open(tmp_path)
    try:
        assert again.load_safety() == state
        head = again.committed_head()
        assert head is not None and head.hash == blocks[2].hash
        assert again.committed_block(2) == blocks[1]
        assert again.committed_block(4) is None
        assert again.get_block(blocks[3].hash) == blocks[3]
        assert [b.height for b in again.blocks_above(2)] == [3, 4]
        assert again.checkpoint() == "note-9\n" and again.checkpoint(6) == "note-6\n"
        assert again.checkpoint(7) is None and again.checkpoint_at_or_above(7) == "note-9\n"
        # 3 entries per block: leaves 0-2 in block 1, 3-5 in block 2, 6-8 in block 3.
        positions = [again.committed_position(i) for i in (0, 2, 3, 8, 9)]
        assert positions == [(1, 3), (1, 3), (2, 6), (3, 9), None]
    finally:
        again.close()


def test_store_reuses_proposal_bytes_exactly(tmp_path: Path) -> None:
    block = _chain(2, 4)[1]
    frame = encode_message(Proposal(block, _b(64)))
    decoded = decode_message(frame, LIMITS)
    assert isinstance(decoded, Proposal)
    store = SqliteStore.open(tmp_path, block_bytes=take_block_bytes)  # as a node opens it
    try:
        store.put_block(decoded.block)  # stored from the frame's bytes, taken once
        assert take_block_bytes(block) is None
        store.put_block(_chain(3, 2)[2])  # encoded afresh
        assert store.get_block(block.hash) == block
    finally:
        store.close()


def test_committed_index_finds_exactly_the_logged_leaves(tmp_path: Path) -> None:
    from chain.log import MerkleLog
    from chain.node.service import CommittedIndex

    rng = random.Random(11)
    log = MerkleLog.open(tmp_path / "log")
    try:
        before = [rng.randbytes(40) for _ in range(300)]
        log.append(before)
        index = CommittedIndex(log, tmp_path / "log" / "log.sqlite")  # loaded from disk
        after = [rng.randbytes(40) for _ in range(300)]
        log.append(after)
        index.add([leaf_hash(e) for e in after])  # as on commit
        fresh = [leaf_hash(rng.randbytes(40)) for _ in range(3000)]
        probe = [leaf_hash(e) for e in before[::7] + after[::5]]
        assert index.committed(probe + fresh) == set(probe)
        assert CommittedIndex(log, None).committed(probe[:5] + fresh[:5]) == set(probe[:5])
    finally:
        log.close()
