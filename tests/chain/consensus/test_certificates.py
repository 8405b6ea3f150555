"""Blocks, QCs, TCs and messages verify themselves against the committee, and reject every
forgery a Byzantine validator can produce."""

from __future__ import annotations

import dataclasses

import pytest
from builders import COMMITTEE, KEYS, child, propose, qc_for, tc_for, timeout, vote

from chain.checkpoint import Checkpoint, checkpoint_signature
from chain.consensus.blocks import (
    GENESIS,
    GENESIS_QC,
    Limits,
    QuorumCert,
    payload_digest,
    vote_message,
)
from chain.consensus.errors import InvalidBlockError, InvalidMessageError
from chain.consensus.messages import CheckpointVote
from chain.keys import Signer
from chain.merkle import CompactRange

LIMITS = Limits(max_entries=4, max_block_bytes=100, max_entry_bytes=40)
B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"a", b"b"))
B2, F2 = child(B1, F1, entries=(b"c",))


def test_valid_chain_verifies() -> None:
    for block in (B1, B2):
        block.verify(COMMITTEE, LIMITS)
        propose(block).verify(COMMITTEE, LIMITS)
    assert B2.verify_extends(B1, F1) == F2
    qc_for(B2).verify(COMMITTEE)
    vote(3, B2.view, B2.hash).verify(COMMITTEE)


@pytest.mark.parametrize(
    "sigs",
    [
        pytest.param(lambda s: s[:2], id="fewer than 2f+1"),
        pytest.param(lambda s: (s[0], s[0], s[1]), id="duplicate signer"),
        pytest.param(lambda s: (s[1], s[0], s[2]), id="unsorted signers"),
        pytest.param(lambda s: (s[0], s[1], (2, bytes(64))), id="bad signature"),
        pytest.param(lambda s: (s[0], s[1], (7, s[2][1])), id="unknown signer"),
        pytest.param(lambda s: (s[0], s[1], (3, s[2][1])), id="signature of another validator"),
    ],
)
def test_forged_qc_is_rejected(sigs) -> None:  # type: ignore[no-untyped-def]
    good = qc_for(B1)
    forged = QuorumCert(good.view, good.block_hash, tuple(sigs(good.signatures)))
    with pytest.raises(InvalidMessageError):
        forged.verify(COMMITTEE)


def test_qc_signed_for_another_chain_is_rejected() -> None:
    sigs = tuple((i, KEYS[i].sign(vote_message("other.chain", B1.view, B1.hash))) for i in range(3))
    with pytest.raises(InvalidMessageError):
        QuorumCert(B1.view, B1.hash, sigs).verify(COMMITTEE)


def test_foreign_key_vote_is_rejected() -> None:
    intruder = Signer.from_seed("v1", bytes(32))
    bad = vote(1, B1.view, B1.hash)
    bad = dataclasses.replace(
        bad, signature=intruder.sign(vote_message("sim.notary.example", B1.view, B1.hash))
    )
    with pytest.raises(InvalidMessageError):
        bad.verify(COMMITTEE)


def test_fake_genesis_qc_is_rejected() -> None:
    with pytest.raises(InvalidMessageError):
        QuorumCert(0, B1.hash).verify(COMMITTEE)
    GENESIS_QC.verify(COMMITTEE)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"root": bytes(32)}, InvalidBlockError),
        ({"tree_size": 4}, InvalidBlockError),
        ({"payload_digest": payload_digest((b"x",))}, InvalidBlockError),
        ({"timestamp_ms": B1.timestamp_ms - 1}, InvalidBlockError),
        ({"height": 3}, InvalidBlockError),
        ({"entries": (b"c", b"d")}, InvalidBlockError),
    ],
)
def test_block_not_following_parent_is_rejected(change: dict[str, object], error: type) -> None:
    bad = dataclasses.replace(B2, **change)  # type: ignore[arg-type]
    with pytest.raises(error):
        bad.verify(COMMITTEE, LIMITS)
        bad.verify_extends(B1, F1)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param((b"a",) * 5, id="too many entries"),
        pytest.param((b"x" * 41,), id="entry too big"),
        pytest.param((b"x" * 40,) * 3, id="block too big"),
        pytest.param((b"",), id="empty entry"),
    ],
)
def test_size_limits(entries: tuple[bytes, ...]) -> None:
    block, _ = child(B1, F1, entries=entries)
    with pytest.raises(InvalidBlockError):
        block.verify(COMMITTEE, LIMITS)


def test_proposal_from_wrong_leader_or_bad_signature() -> None:
    wrong = dataclasses.replace(B2, proposer=(B2.proposer + 1) % 4)
    with pytest.raises(InvalidBlockError):
        propose(wrong).verify(COMMITTEE, LIMITS)
    with pytest.raises(InvalidMessageError):
        propose(B2, signer=(B2.proposer + 1) % 4).verify(COMMITTEE, LIMITS)


def test_view_rule_needs_tc_after_a_gap() -> None:
    gap, _ = child(B1, F1, view=B1.view + 2)
    with pytest.raises(InvalidBlockError):
        gap.verify(COMMITTEE, LIMITS)
    q1 = qc_for(B1)
    tc = tc_for(B1.view + 1, {0: q1, 1: q1, 2: GENESIS_QC})
    ok, _ = child(B1, F1, view=B1.view + 2, tc=tc)
    ok.verify(COMMITTEE, LIMITS)
    # A block on an older QC than the TC's highest is invalid.
    q2 = qc_for(B2)
    tc2 = tc_for(B2.view + 1, {0: q2, 1: q1, 2: q1})
    stale, _ = child(B1, F1, view=B2.view + 2, tc=tc2)
    with pytest.raises(InvalidBlockError):
        stale.verify(COMMITTEE, LIMITS)


def test_tc_and_timeout_verification() -> None:
    q1 = qc_for(B1)
    tc = tc_for(5, {0: q1, 1: q1, 3: GENESIS_QC})
    tc.verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):
        dataclasses.replace(tc, timeouts=tc.timeouts[:2]).verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):
        dataclasses.replace(tc, high_qc=GENESIS_QC).verify(COMMITTEE)
    t = timeout(2, 6, q1, tc)
    t.verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):
        dataclasses.replace(t, voter=1).verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):  # claims a higher QC than it signed
        dataclasses.replace(t, high_qc=qc_for(B2)).verify(COMMITTEE)


def test_checkpoint_vote() -> None:
    cp = Checkpoint("sim.notary.example", F2.size, F2.root())
    sig = checkpoint_signature(cp, KEYS[1]).signature
    CheckpointVote(B2.height, F2.size, F2.root(), 1, sig).verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):
        CheckpointVote(B2.height, F2.size, F1.root(), 1, sig).verify(COMMITTEE)
    with pytest.raises(InvalidMessageError):
        CheckpointVote(B2.height, F2.size, F2.root(), 2, sig).verify(COMMITTEE)
