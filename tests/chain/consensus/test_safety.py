"""The voting, timeout, proposal and commit rules, and that state is persisted before the
caller may sign."""

from __future__ import annotations

import pytest
from builders import child, qc_for, tc_for

from chain.consensus.blocks import GENESIS, GENESIS_QC
from chain.consensus.errors import UnsafeError
from chain.consensus.safety import Rules, SafetyRules, SafetyState
from chain.consensus.store import MemoryStore
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty())
B2, F2 = child(B1, F1)
B3, F3 = child(B2, F2)


def rules() -> tuple[SafetyRules, MemoryStore]:
    store = MemoryStore()
    return SafetyRules(store), store


def test_vote_once_per_view_and_persisted_first() -> None:
    safety, store = rules()
    safety.prepare_vote(B1)
    assert store.load_safety() == SafetyState(last_voted_view=B1.view, high_qc=GENESIS_QC)
    with pytest.raises(UnsafeError):
        safety.prepare_vote(B1)
    other, _ = child(GENESIS, CompactRange.empty(), entries=(b"x",))
    with pytest.raises(UnsafeError):  # an equivocating sibling in the same view
        safety.prepare_vote(other)
    safety.prepare_vote(B2)
    assert store.load_safety().high_qc == B2.qc  # type: ignore[union-attr]


def test_no_vote_after_timeout_in_the_view() -> None:
    safety, store = rules()
    safety.prepare_timeout(B1.view)
    assert store.load_safety().last_voted_view == B1.view  # type: ignore[union-attr]
    with pytest.raises(UnsafeError):
        safety.prepare_vote(B1)


def test_timeout_below_last_vote_keeps_the_vote_guard() -> None:
    safety, _ = rules()
    safety.prepare_vote(B2)
    safety.prepare_timeout(B1.view)
    assert safety.state.last_voted_view == B2.view


def test_vote_after_tc_must_extend_its_highest_qc() -> None:
    q1, q2 = qc_for(B1), qc_for(B2)
    tc = tc_for(B3.view, {0: q2, 1: q1, 2: q1})  # view 3 failed; someone holds QC(B2)
    stale, _ = child(B1, F1, view=B3.view + 1, tc=tc)  # extends QC(B1) < QC(B2)
    fresh, _ = child(B2, F2, view=B3.view + 1, tc=tc)
    with pytest.raises(UnsafeError):
        Rules().check_vote(SafetyState(), stale)
    Rules().check_vote(SafetyState(), fresh)
    with pytest.raises(UnsafeError):  # a gap in views without any TC
        Rules().check_vote(SafetyState(), child(B1, F1, view=B1.view + 2)[0])


def test_propose_once_per_view() -> None:
    safety, store = rules()
    safety.prepare_proposal(B1)
    assert store.load_safety().last_proposed_view == B1.view  # type: ignore[union-attr]
    with pytest.raises(UnsafeError):
        safety.prepare_proposal(child(GENESIS, CompactRange.empty(), entries=(b"y",))[0])


def test_two_chain_commit_rule() -> None:
    r = Rules()
    assert r.committed_by(B2, B1) is B1  # consecutive views: B1 commits
    gap, _ = child(
        B1,
        F1,
        view=B1.view + 2,
        tc=tc_for(B1.view + 1, {0: qc_for(B1), 1: GENESIS_QC, 2: GENESIS_QC}),
    )
    assert r.committed_by(gap, B1) is None  # not a direct chain: nothing commits
    assert r.committed_by(B2, None) is None


def test_state_survives_restart() -> None:
    safety, store = rules()
    safety.prepare_vote(B1)
    safety.observe_qc(qc_for(B2))
    again = SafetyRules(store)
    # The vote is remembered; the unpersisted high QC may be lost but never regresses
    # below what a signed message carried.
    assert again.state.last_voted_view == B1.view
    with pytest.raises(UnsafeError):
        again.prepare_vote(B1)


def test_a_proposal_records_the_proposers_own_vote_in_one_write() -> None:
    safety, store = rules()
    assert safety.prepare_proposal(B1, vote=True) is True
    assert store.saves == 1
    state = store.load_safety()
    assert state is not None
    assert (state.last_proposed_view, state.last_voted_view) == (B1.view, B1.view)
    with pytest.raises(UnsafeError):  # the recorded vote counts: no second one in the view
        safety.prepare_vote(B1)
    # A proposal the vote rule forbids is still recorded, without a vote.
    safety, store = rules()
    safety.prepare_timeout(B2.view)
    assert safety.prepare_proposal(B2, vote=True) is False
    state = store.load_safety()
    assert state is not None
    assert (state.last_proposed_view, state.last_voted_view) == (B2.view, B2.view)
