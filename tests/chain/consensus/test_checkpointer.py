"""Checkpoint votes: collected into a committed note once a quorum signed, each vote
verified (a forged one is rejected even when an identical valid one was seen), and votes
for checkpoints already completed, here or before a restart, are dropped unverified."""

from __future__ import annotations

import dataclasses

import pytest
from builders import COMMITTEE, KEYS, child

from chain.checkpoint import Checkpoint, checkpoint_signature, verify_checkpoint
from chain.consensus.blocks import GENESIS
from chain.consensus.errors import InvalidMessageError
from chain.consensus.ledger import Checkpointer
from chain.consensus.messages import CheckpointVote
from chain.consensus.store import MemoryStore
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"e1", b"e2"))
B2, _ = child(B1, F1, entries=(b"e3",))


def cp_vote(i: int, size: int, root: bytes) -> CheckpointVote:
    cp = Checkpoint(origin=COMMITTEE.chain_id, size=size, root=root)
    return CheckpointVote(1, size, root, i, checkpoint_signature(cp, KEYS[i]).signature)


def forged(v: CheckpointVote) -> CheckpointVote:
    return dataclasses.replace(v, signature=bytes([v.signature[0] ^ 1]) + v.signature[1:])


def test_a_quorum_of_votes_makes_a_stored_committed_note() -> None:
    store = MemoryStore()
    cp = Checkpointer(COMMITTEE, None, store)
    assert cp.receive(cp_vote(0, B1.tree_size, B1.root)) is None
    assert cp.receive(cp_vote(1, B1.tree_size, B1.root)) is None
    with pytest.raises(InvalidMessageError):  # its valid twin verified a moment ago
        cp.receive(forged(cp_vote(1, B1.tree_size, B1.root)))
    note = cp.receive(cp_vote(2, B1.tree_size, B1.root))
    assert note is not None and store.checkpoint(B1.tree_size) == note
    assert verify_checkpoint(note, COMMITTEE.trust).signers == ("v0", "v1", "v2")
    # Completed: a late vote (even a forged one) is dropped without work.
    assert cp.receive(forged(cp_vote(3, B1.tree_size, B1.root))) is None


def test_after_a_restart_stored_sizes_are_dropped_and_later_ones_verified() -> None:
    store = MemoryStore()
    first = Checkpointer(COMMITTEE, None, store)
    for i in range(3):
        first.receive(cp_vote(i, B1.tree_size, B1.root))
    again = Checkpointer(COMMITTEE, None, store)  # a restart on the same store
    assert again.receive(forged(cp_vote(3, B1.tree_size, B1.root))) is None
    with pytest.raises(InvalidMessageError):
        again.receive(forged(cp_vote(3, B2.tree_size, B2.root)))
    for i in range(3):
        note = again.receive(cp_vote(i, B2.tree_size, B2.root))
    assert note is not None and store.checkpoint(B2.tree_size) == note
