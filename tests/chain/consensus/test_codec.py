"""The canonical encoding round-trips every message and rejects malformed bytes."""

from __future__ import annotations

import pytest
from builders import KEYS, child, propose, qc_for, tc_for, timeout, vote

from chain.checkpoint import Checkpoint, checkpoint_signature
from chain.consensus.blocks import GENESIS, GENESIS_QC, Limits
from chain.consensus.codec import decode_block, decode_message, encode_block, encode_message
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import BlockRequest, BlockResponse, CheckpointVote
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"a", b"bc"))
B2, F2 = child(B1, F1)
TC = tc_for(5, {0: qc_for(B1), 1: GENESIS_QC, 3: qc_for(B2)})
B6, _ = child(B2, F2, view=6, tc=TC, entries=(b"z",))
CP = Checkpoint("sim.notary.example", 2, F1.root())
MESSAGES = [
    propose(B1),
    propose(B6),
    vote(2, 7, B2.hash),
    timeout(1, 6, qc_for(B2), TC),
    timeout(1, 3, GENESIS_QC, None),
    CheckpointVote(1, 2, F1.root(), 3, checkpoint_signature(CP, KEYS[3]).signature),
    BlockRequest(B2.hash, 64, 0),
    BlockResponse((B2, B1)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: object) -> None:
    data = encode_message(message)  # type: ignore[arg-type]
    assert decode_message(data, Limits()) == message
    with pytest.raises(InvalidMessageError):
        decode_message(data + b"\x00", Limits())
    with pytest.raises(InvalidMessageError):
        decode_message(data[:-1], Limits())


def test_block_round_trip_and_hash_stability() -> None:
    data = encode_block(B6)
    back = decode_block(data, Limits())
    assert back == B6 and back.hash == B6.hash


def test_limits_apply_while_decoding() -> None:
    with pytest.raises(InvalidMessageError):
        decode_block(encode_block(B1), Limits(max_entries=1))
    with pytest.raises(InvalidMessageError):
        decode_message(b"\x09", Limits())
