"""Handlers of one replica, driven by hand: what it votes for, what it rejects without
crashing, what it fetches, and that an observer never signs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from builders import COMMITTEE, KEYS, NOW, child, propose, qc_for, timeout, vote

from chain.consensus.blocks import GENESIS, GENESIS_QC
from chain.consensus.core import Core, CoreConfig
from chain.consensus.ledger import MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    Message,
    Proposal,
    Timeout,
    Vote,
)
from chain.consensus.store import MemoryStore
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"one",))
B2, F2 = child(B1, F1, entries=(b"two",))
B3, F3 = child(B2, F2)


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str | None, Message]] = []

    def send(self, to: str, message: Message) -> None:
        self.sent.append((to, message))

    def broadcast(self, message: Message) -> None:
        self.sent.append((None, message))

    def of(self, kind: type) -> list[Message]:
        return [m for _, m in self.sent if isinstance(m, kind)]


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.timers: list[tuple[int, Callable[[], None], Timer]] = []

    def now_ms(self) -> int:
        return self.now

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        timer = Timer()
        self.timers.append((self.now + delay_ms, callback, timer))
        return timer

    def advance(self, ms: int) -> None:
        self.now += ms
        while True:
            due = [t for t in self.timers if t[0] <= self.now]
            if not due:
                return
            for t in due:
                self.timers.remove(t)
                if not t[2].cancelled:
                    t[1]()


class Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def replica(
    index: int | None, config: CoreConfig | None = None, mempool: Mempool | None = None
) -> tuple[Core, Outbox, Clock]:
    out, clock, store = Outbox(), Clock(), MemoryStore()
    core = Core(
        name=KEYS[index].name if index is not None else "observer",
        committee=COMMITTEE,
        signer=KEYS[index] if index is not None else None,
        transport=out,
        clock=clock,
        block_store=store,
        safety_store=store if index is not None else None,
        ledger=MemoryLedger(),
        mempool=mempool,
        config=config,
    )
    core.start()
    return core, out, clock


def test_votes_for_valid_proposal() -> None:
    core, out, _ = replica(0)
    core.handle("v1", propose(B1))
    assert out.sent == [(None, vote(0, B1.view, B1.hash))]  # to every validator
    core, out, _ = replica(0, CoreConfig(broadcast_votes=False))
    core.handle("v1", propose(B1))
    assert out.sent == [(KEYS[2].name, vote(0, B1.view, B1.hash))]  # to the next leader


def test_bad_proposals_get_no_vote_and_do_not_crash() -> None:
    core, out, _ = replica(0)
    wrong_leader = dataclasses.replace(B1, proposer=3)
    future = child(GENESIS, CompactRange.empty(), entries=(b"one",), timestamp=NOW + 60_000)[0]
    bad_root = dataclasses.replace(B1, root=bytes(32))
    for block in (wrong_leader, future, bad_root):
        core.handle("v3", propose(block))
    core.handle("v3", propose(B1, signer=3))  # right leader named, wrong key signed
    core.handle("v3", BlockResponse((B2,)))  # unsolicited
    assert not out.of(Vote)
    assert core.errors == 5


def test_unknown_parent_is_fetched_then_voted() -> None:
    core, out, _ = replica(1)
    p3 = propose(B3)
    core.handle("v3", p3)
    requests = out.of(BlockRequest)
    assert requests and requests[0].block_hash == B2.hash  # type: ignore[union-attr]
    core.handle("v3", BlockResponse((B2, B1)))
    assert core.head == B1  # B2 certified (by B3's QC) with consecutive views commits B1
    assert core.ledger.size == 1
    assert [m.view for m in out.of(Vote)] == [B3.view]  # type: ignore[attr-defined]


def test_timeout_then_tc_moves_to_next_view() -> None:
    pool = Mempool(MempoolConfig())
    core, out, clock = replica(0, mempool=pool)
    pool.add([b"work to do"])  # view 1's leader (v1) has something to propose, and is silent
    clock.advance(1_000)  # the view-1 timer fires
    mine = out.of(Timeout)
    assert [t.view for t in mine] == [1]  # type: ignore[attr-defined]
    for i in (1, 2):
        core.handle(f"v{i}", timeout(i, 1, GENESIS_QC))
    clock.advance(0)  # own timeout delivered locally
    assert core.view == 2 and core.last_tc is not None and core.last_tc.view == 1
    # After timing out in view 1 it must not vote in view 1.
    core.handle("v1", propose(B1))
    assert not out.of(Vote)


def test_f_plus_one_timeouts_make_a_replica_join() -> None:
    core, out, _ = replica(0)
    core.handle("v1", timeout(1, 1, GENESIS_QC))
    assert not out.of(Timeout)
    core.handle("v2", timeout(2, 1, GENESIS_QC))
    assert [t.view for t in out.of(Timeout)] == [1]  # type: ignore[attr-defined]


def test_leader_forms_qc_and_proposes() -> None:
    core, out, clock = replica(2)  # leader of view 2
    core.handle("v1", propose(B1))
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, B1.view, B1.hash))
    clock.advance(100)  # batch delay
    proposals = [m for _, m in out.sent if type(m).__name__ == "Proposal"]
    assert proposals and proposals[0].block.qc == qc_for(B1, (0, 1, 3))  # type: ignore[attr-defined]


@pytest.mark.parametrize("message", [propose(B1), timeout(1, 1, GENESIS_QC)])
def test_observer_never_signs(message: Message) -> None:
    core, out, clock = replica(None)
    core.handle("v1", message)
    clock.advance(20_000)
    assert not out.of(Vote) and not out.of(Timeout)


# -- quiescence: an idle chain neither proposes nor times out until work appears --------

HEARTBEAT = CoreConfig().heartbeat_ms


def test_idle_chain_does_not_time_out_until_a_heartbeat_is_missed() -> None:
    core, out, clock = replica(0, mempool=Mempool(MempoolConfig()))
    clock.advance(5 * 1_000)  # five view timeouts with nothing to do
    assert not out.of(Timeout) and core.view == 1
    # A silent leader of a quiet chain still costs one heartbeat plus one timeout.
    clock.advance(HEARTBEAT + 1_000 - 5 * 1_000)
    assert [t.view for t in out.of(Timeout)] == [1]  # type: ignore[attr-defined]


def test_new_entries_start_the_view_timeout() -> None:
    pool = Mempool(MempoolConfig())
    _core, out, clock = replica(0, mempool=pool)
    clock.advance(3_000)
    pool.add([b"an entry"])  # the leader of view 1 should now propose within a timeout
    clock.advance(999)
    assert not out.of(Timeout)
    clock.advance(1)
    assert [t.view for t in out.of(Timeout)] == [1]  # type: ignore[attr-defined]


def test_a_peer_timeout_starts_the_view_timeout() -> None:
    core, out, clock = replica(0, mempool=Mempool(MempoolConfig()))
    clock.advance(3_000)
    core.handle("v2", timeout(2, 1, GENESIS_QC))  # v2 has work the leader ignores
    clock.advance(1_000)
    assert [t.view for t in out.of(Timeout)] == [1]  # type: ignore[attr-defined]


def test_first_leader_of_a_new_chain_proposes_a_heartbeat() -> None:
    # Genesis is "long ago" (timestamp 0): a heartbeat is due at once.
    _core, out, clock = replica(COMMITTEE.leader(1), mempool=Mempool(MempoolConfig()))
    clock.advance(CoreConfig().batch_delay_ms)
    (beat,) = out.of(Proposal)
    assert beat.block.entries == ()  # type: ignore[attr-defined]


def test_idle_leader_proposes_when_entries_arrive_or_the_heartbeat_is_due() -> None:
    e1, f1 = child(GENESIS, CompactRange.empty())
    e2, f2 = child(e1, f1)
    e3, _ = child(e2, f2)  # a quiet chain: three empty blocks
    leader = COMMITTEE.leader(4)
    pool = Mempool(MempoolConfig())
    core, out, clock = replica(leader, mempool=pool)
    for block in (e1, e2, e3):
        core.handle("v0", propose(block))
    for i in [i for i in range(4) if i != leader]:
        core.handle(f"v{i}", vote(i, e3.view, e3.hash))
    assert core.view == 4
    clock.advance(1_000)
    assert not [p for p in out.of(Proposal) if p.block.view == 4]  # type: ignore[attr-defined]
    pool.add([b"first entry"])
    clock.advance(CoreConfig().batch_delay_ms)
    (p,) = [p for p in out.of(Proposal) if p.block.view == 4]  # type: ignore[attr-defined]
    assert p.block.entries == (b"first entry",)  # type: ignore[attr-defined]

    # The same without entries: an empty block one heartbeat after its parent's time.
    core, out, clock = replica(leader, mempool=Mempool(MempoolConfig()))
    for block in (e1, e2, e3):
        core.handle("v0", propose(block))
    for i in [i for i in range(4) if i != leader]:
        core.handle(f"v{i}", vote(i, e3.view, e3.hash))
    clock.advance(e3.timestamp_ms + HEARTBEAT - clock.now - 1)
    assert not [p for p in out.of(Proposal) if p.block.view == 4]  # type: ignore[attr-defined]
    clock.advance(1)
    (beat,) = [p for p in out.of(Proposal) if p.block.view == 4]  # type: ignore[attr-defined]
    assert beat.block.entries == ()  # type: ignore[attr-defined]


def test_leader_proposes_to_commit_pending_entries_then_goes_quiet() -> None:
    # v2 leads view 2 and holds QC(B1); B1 has entries, so it proposes (empty) to commit it.
    core, out, clock = replica(2, mempool=Mempool(MempoolConfig()))
    core.handle("v1", propose(B1))
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, B1.view, B1.hash))
    clock.advance(100)
    (p,) = out.of(Proposal)
    assert p.block.entries == () and p.block.qc.block_hash == B1.hash  # type: ignore[attr-defined]


def test_leader_needed_to_commit_entries_does_not_wait_for_the_batch_delay() -> None:
    # B1 holds entries that only a QC for a child of B1 commits: v2, leading view 2, must
    # propose that child at once, with what its mempool holds, not after batch_delay_ms.
    pool = Mempool(MempoolConfig())
    core, out, clock = replica(2, mempool=pool)
    core.handle("v1", propose(B1))
    pool.add([b"arrived meanwhile"])
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, B1.view, B1.hash))
    clock.advance(0)
    (p,) = out.of(Proposal)
    assert p.block.entries == (b"arrived meanwhile",)  # type: ignore[attr-defined]
    assert p.block.qc.block_hash == B1.hash  # type: ignore[attr-defined]


def test_leader_waits_the_batch_delay_to_fill_a_block_nothing_needs() -> None:
    # Nothing above the committed head waits: a lone entry waits for more, up to the delay.
    e1, _ = child(GENESIS, CompactRange.empty())
    pool = Mempool(MempoolConfig())
    core, out, clock = replica(2, mempool=pool)
    core.handle("v1", propose(e1))
    pool.add([b"lone entry"])
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, e1.view, e1.hash))
    clock.advance(CoreConfig().batch_delay_ms - 1)
    assert not out.of(Proposal)
    clock.advance(1)
    (p,) = out.of(Proposal)
    assert p.block.entries == (b"lone entry",)  # type: ignore[attr-defined]


def test_leader_records_its_proposal_and_own_vote_with_one_fsync() -> None:
    core, out, clock = replica(2)  # leader of view 2
    store = core.safety._store
    assert isinstance(store, MemoryStore)
    core.handle("v1", propose(B1))
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, B1.view, B1.hash))
    saves = store.saves
    clock.advance(100)  # batch delay: propose, then the proposal comes back locally
    proposal = next(m for m in out.of(Proposal))
    assert isinstance(proposal, Proposal) and proposal.block.view == 2
    assert [m.view for m in out.of(Vote)] == [1, 2]  # type: ignore[attr-defined]
    assert store.saves == saves + 1
    state = store.load_safety()
    assert state is not None and state.last_voted_view == state.last_proposed_view == 2


def test_a_timeout_between_proposal_and_delivery_cancels_the_recorded_vote() -> None:
    # e1 has no entries to commit: the leader waits the batch delay to fill its block.
    e1, _ = child(GENESIS, CompactRange.empty())
    pool = Mempool(MempoolConfig())
    pool.add([b"an entry"])
    core, out, clock = replica(2, mempool=pool)
    core.handle("v1", propose(e1))
    for i in (0, 1, 3):
        core.handle(f"v{i}", vote(i, e1.view, e1.hash))
    clock.advance(0)  # local deliveries due now
    propose_at = min(clock.timers, key=lambda t: t[0])  # the batch delay, before the view's
    clock.timers.remove(propose_at)
    propose_at[1]()  # the proposal; its local delivery is queued, not run yet
    assert out.of(Proposal) and core.safety.state.last_voted_view == 2
    core._local_timeout(2)  # the view times out first
    clock.advance(0)
    assert [m.view for m in out.of(Vote)] == [1]  # type: ignore[attr-defined]
    assert [t.view for t in out.of(Timeout)] == [2]  # type: ignore[attr-defined]
