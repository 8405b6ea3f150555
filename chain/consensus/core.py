"""The replica: handlers for every consensus message over one event loop.

:meth:`Core.handle` is the only entry point for peer messages and the timers call back
into the same object, all on one event loop, so handlers never interleave. A handler
raises a typed :class:`~chain.errors.ConsensusError` when a message breaks a rule;
``handle`` logs it and goes on, so a bad peer never stops a replica.

Roles: a *validator* (has a signer in the committee) votes, times out and proposes; an
*observer* (no signer) follows the chain, verifies every block and certificate, applies
commits to its own ledger and serves blocks, proofs and checkpoints, but never signs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from chain.consensus.blocks import (
    Block,
    Limits,
    QuorumCert,
    TimeoutCert,
    payload_digest,
    timeout_message,
    vote_message,
)
from chain.consensus.committee import Committee
from chain.consensus.errors import (
    InvalidBlockError,
    InvalidMessageError,
    SafetyViolationError,
    StaleMessageError,
    ensure,
)
from chain.consensus.ledger import Checkpointer, Ledger, apply_block, recover
from chain.consensus.mempool import Mempool
from chain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    CheckpointVote,
    Message,
    Proposal,
    Timeout,
    Vote,
    proposal_message,
)
from chain.consensus.pacemaker import Pacemaker, PacemakerConfig
from chain.consensus.safety import Rules, SafetyRules, SafetyStore
from chain.consensus.store import BlockStore, MemoryStore
from chain.consensus.sync import BlockTree
from chain.consensus.transport import Clock, Timer, Transport
from chain.errors import ChainError
from chain.keys import Signer
from chain.merkle import CompactRange

logger = logging.getLogger(__name__)

CommitListener = Callable[[Block], None]


@dataclass(frozen=True)
class CoreConfig:
    """Tunables of a replica."""

    limits: Limits = field(default_factory=Limits)
    pacemaker: PacemakerConfig = field(default_factory=PacemakerConfig)
    batch_delay_ms: int = 50
    sync_batch: int = 64
    sync_retry_ms: int = 500
    max_waiting_blocks: int = 4096
    # Votes and timeouts further ahead than this are not aggregated (bounded memory);
    # the certificates they carry are still processed, so a lagging replica catches up.
    max_views_ahead: int = 1_000
    # Votes go to every validator (not only the next leader), so every replica forms the
    # QC and a crashed next leader costs one view timeout instead of two; n^2 small
    # messages per block, immaterial for n <= 100 next to the block itself.
    broadcast_votes: bool = True
    # An idle chain (nothing to propose, nothing waiting to commit) proposes one empty
    # block per heartbeat instead of one per view, and its view timers wait for work
    # (plus one heartbeat); see "Quiescence" in docs/consensus.md. 0: no heartbeat.
    heartbeat_ms: int = 10_000


class Core:
    """One replica (validator or observer) of the chain."""

    def __init__(
        self,
        *,
        name: str,
        committee: Committee,
        signer: Signer | None,
        transport: Transport,
        clock: Clock,
        block_store: BlockStore,
        ledger: Ledger,
        safety_store: SafetyStore | None = None,
        mempool: Mempool | None = None,
        config: CoreConfig | None = None,
        rules: Rules | None = None,
    ) -> None:
        """Recover from ``block_store``/``safety_store``/``ledger``; call :meth:`start` next.

        ``signer`` None makes an observer. A validator needs a ``safety_store`` whose
        ``save_safety`` is durable (fsync) before it returns.
        """
        self.name = name
        self.committee = committee
        self.config = config or CoreConfig()
        self.signer = signer
        self.index: int | None = None
        if signer is not None:
            self.index = committee.index_of(signer.name)
            if self.index is None or committee.members[self.index].public_key != signer.public_key:
                raise ValueError(f"{signer.name} is not a validator of {committee.chain_id}")
            if safety_store is None:
                raise ValueError("a validator needs a durable safety store")
        self.transport = transport
        self.clock = clock
        self.store = block_store
        self.ledger = ledger
        self.mempool = mempool
        if mempool is not None:
            mempool.on_added = self.on_new_entries
        self.safety = SafetyRules(safety_store or MemoryStore(), rules)
        self.rules = self.safety.rules
        self.pacemaker = Pacemaker(self.config.pacemaker)
        self.tree = BlockTree(recover(block_store, ledger), ledger.compact_range())
        self.last_tc: TimeoutCert | None = None
        self.commit_listeners: list[CommitListener] = []
        self.errors = 0
        self._votes: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self._voted: dict[tuple[int, int], bytes] = {}  # (view, voter) -> block hash
        self._timeouts: dict[int, dict[int, Timeout]] = {}
        self._timeout_sent_view = 0
        self._certified: dict[bytes, QuorumCert] = {}
        self._requested: dict[bytes, tuple[int, int]] = {}  # hash -> (time, peer turn)
        self._view_timer: Timer | None = None
        # The current view's timer waits for work (a quiet chain): it is armed for one
        # heartbeat plus the view timeout, and re-armed for the view timeout when work
        # appears (_wake).
        self._parked = False
        # A leader with nothing to propose in this view waits for work or the heartbeat.
        self._idle_leader_view = 0
        self._propose_waiting = 0
        # The last proposal this replica built, with the log frontier after its block:
        # when it comes back through local delivery it needs no re-verification.
        self._own: tuple[Proposal, CompactRange] | None = None
        # The hash of that proposal's block when its vote was recorded with it.
        self._prevoted: bytes | None = None
        self.checkpointer = Checkpointer(committee, signer, block_store)
        self._started = False

    # -- recovery ----------------------------------------------------------------------

    def start(self) -> None:
        """Reload stored blocks, enter the recovered view and arm the timers."""
        if self._started:
            return
        self._started = True
        state = self.safety.state
        for block in self.store.blocks_above(self.tree.head.height):
            parent = self.tree.get(block.parent_hash)
            if parent is not None and block.hash not in self.tree:
                try:
                    self._insert(block, block.verify_extends(parent, self.tree.frontier(parent)))
                    self._process_qc(block.qc, None)  # may commit what the crash left pending
                except ChainError as e:
                    logger.warning("%s: stored block %d unusable: %s", self.name, block.height, e)
        self._process_qc(state.high_qc, None)
        # The view is recovered from certificates, not from the last vote: a replica must
        # be able to time out (and so help form a TC) in a view its peers can reach.
        self.pacemaker.advance(state.high_qc.view + 1, by_qc=True)
        self._enter_view()

    # -- the event loop entry point ----------------------------------------------------

    def handle(self, sender: str, message: Message) -> None:
        """Process one message from ``sender``; rule violations are logged, not raised."""
        try:
            if isinstance(message, Proposal):
                self._on_proposal(sender, message)
            elif isinstance(message, Vote):
                self._on_vote(sender, message)
            elif isinstance(message, Timeout):
                self._on_timeout(sender, message)
            elif isinstance(message, CheckpointVote):
                self._on_checkpoint_vote(message)
            elif isinstance(message, BlockRequest):
                self._on_block_request(sender, message)
            elif isinstance(message, BlockResponse):
                self._on_block_response(sender, message)
            else:
                raise InvalidMessageError(f"unknown message type {type(message).__name__}")
        except SafetyViolationError:
            raise
        except ChainError as e:
            self.errors += 1
            logger.debug(
                "%s: rejected %s from %s: %s", self.name, type(message).__name__, sender, e
            )

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Wrap a timer callback so rule violations inside it are logged like handlers'."""

        def run() -> None:
            try:
                fn()
            except SafetyViolationError:
                raise
            except ChainError as e:
                self.errors += 1
                logger.debug("%s: timer: %s", self.name, e)

        return run

    @property
    def is_validator(self) -> bool:
        """Whether this replica votes (has a committee key)."""
        return self.index is not None

    @property
    def view(self) -> int:
        """The current view."""
        return self.pacemaker.view

    @property
    def high_qc(self) -> QuorumCert:
        """The highest QC seen."""
        return self.safety.state.high_qc

    @property
    def head(self) -> Block:
        """The highest committed block."""
        return self.tree.head

    # -- proposals ---------------------------------------------------------------------

    def _on_proposal(self, sender: str, p: Proposal) -> None:
        block = p.block
        if block.hash in self.tree:
            return
        if self._own is None or self._own[0] is not p:
            p.verify(self.committee, self.config.limits)
        self._process_qc(block.qc, sender)
        if block.tc is not None:
            self._process_tc(block.tc)
        self._accept(block, sender, proposal=True)

    def _accept(self, block: Block, sender: str | None, *, proposal: bool) -> None:
        """Insert ``block`` (verified on its own) once its parent is known, then any
        blocks that were waiting for it; vote for proposals of the current view."""
        work = [(block, proposal)]
        while work:
            block, proposal = work.pop()
            if block.hash in self.tree:
                continue
            parent = self.tree.get(block.parent_hash)
            if parent is None:
                ensure(block.height > self.head.height, StaleMessageError, "block below head")
                ensure(
                    self.tree.wait(block, proposal, self.config.max_waiting_blocks),
                    InvalidMessageError,
                    "too many blocks waiting for their parents",
                )
                self._request(block.parent_hash, sender)
                continue
            own = self._own
            if own is not None and own[0].block is block:
                frontier = own[1]  # built by _propose from this very parent
                self._own = None
            else:
                frontier = block.verify_extends(parent, self.tree.frontier(parent))
            self._insert(block, frontier)
            if proposal:
                try:
                    self._maybe_vote(block)
                except ChainError as e:
                    self.errors += 1
                    logger.debug("%s: no vote for view %d: %s", self.name, block.view, e)
            work.extend(self.tree.release(block.hash))

    def _insert(self, block: Block, frontier: CompactRange) -> None:
        self.tree.insert(block, frontier)
        self.store.put_block(block)
        self._requested.pop(block.hash, None)
        if block.entries:
            self._wake()
        qc = self._certified.get(block.hash)
        if qc is not None:
            self._on_certified(block)
        if self._propose_waiting == self.view and block.hash == self.high_qc.block_hash:
            self._propose_waiting = 0
            view = self.view
            self.clock.call_later(0, self._guarded(lambda: self._propose(view)))

    def _maybe_vote(self, block: Block) -> None:
        if self.signer is None or self.index is None or block.view != self.view:
            return
        now = self.clock.now_ms()
        ensure(
            abs(block.timestamp_ms - now) <= self.config.limits.max_clock_skew_ms,
            InvalidBlockError,
            f"block timestamp {block.timestamp_ms} is more than the allowed skew from {now}",
        )
        if self._prevoted == block.hash:
            self._prevoted = None  # recorded with the proposal (_propose): durable already
        else:
            self.safety.prepare_vote(block)  # durable before the vote exists
        signature = self.signer.sign(vote_message(self.committee.chain_id, block.view, block.hash))
        v = Vote(block.view, block.hash, self.index, signature)
        if self.config.broadcast_votes:
            self._broadcast(v)
        else:
            self._send(self.committee.leader(block.view + 1), v)

    def _schedule_proposal(self) -> None:
        view = self.view
        exclude = self.tree.pending_leaves(self.high_qc.block_hash)
        # No wait to fill the block when a full batch waits, or when entries above the
        # committed head wait for this block to commit them (it is needed anyway; what
        # reached the mempool meanwhile rides along).
        ready = bool(exclude) or (self.mempool is not None and self.mempool.ready(exclude))
        delay = 0 if ready else self.config.batch_delay_ms
        self.clock.call_later(delay, self._guarded(lambda: self._propose(view)))

    def _expects_progress(self) -> bool:
        """Whether a view should end soon: entries wait in the mempool, or blocks with
        entries wait above the committed head for the descendants that commit them."""
        if self.mempool is not None and len(self.mempool):
            return True
        return self.tree.has_pending_entries()

    def _wake(self, *, force: bool = False) -> None:
        """Work appeared (or a peer timed out, ``force``): a parked view timer starts
        its timeout now, and an idle leader of the current view proposes."""
        if self._parked and (force or self._expects_progress()):
            self._parked = False
            self._arm_view_timer(self.pacemaker.duration_ms())
        if self._idle_leader_view == self.view:
            self._idle_leader_view = 0
            self._schedule_proposal()

    def on_new_entries(self) -> None:
        """The mempool admitted entries (wired as the mempool's listener)."""
        self._wake()

    def _idle(self, parent: Block, exclude: set[bytes]) -> bool:
        """Whether the leader has nothing to propose on ``parent``: no new entries, no
        uncommitted entries below, no QC that commits entries others may not know of,
        and the heartbeat is not due."""
        if exclude or self.config.heartbeat_ms <= 0:
            return False
        if self.mempool is not None and len(self.mempool) > 0:
            return False
        # parent's QC (which this proposal carries) may be the one that commits the
        # head's entries; with votes sent to the leader only, others learn it from here.
        if self.head.entries and self.head.hash in (parent.hash, parent.parent_hash):
            return False
        return self.clock.now_ms() < parent.timestamp_ms + self.config.heartbeat_ms

    def _propose(self, view: int) -> None:
        if self.signer is None or self.index is None:
            return
        if view != self.view or self.safety.state.last_proposed_view >= view:
            return
        qc = self.high_qc
        parent = self.tree.get(qc.block_hash)
        if parent is None:
            self._propose_waiting = view
            self._request(qc.block_hash, None)
            return
        tc = None
        if qc.view + 1 != view:
            if self.last_tc is None or self.last_tc.view + 1 != view:
                return  # entered by a QC we no longer hold as highest: wait for the timeout
            tc = self.last_tc
        exclude = self.tree.pending_leaves(parent.hash)
        if self._idle(parent, exclude):
            # Nothing to do: wait for entries (_wake) or for the heartbeat to be due.
            self._idle_leader_view = view
            due = parent.timestamp_ms + self.config.heartbeat_ms - self.clock.now_ms()
            self.clock.call_later(max(1, due), self._guarded(lambda: self._propose(view)))
            return
        entries, leaves = self.mempool.take(exclude) if self.mempool is not None else ((), ())
        frontier = self.tree.frontier(parent).append(leaves)
        block = Block(
            height=parent.height + 1,
            view=view,
            parent_hash=parent.hash,
            proposer=self.index,
            timestamp_ms=max(self.clock.now_ms(), parent.timestamp_ms),
            payload_digest=payload_digest(entries),
            tree_size=frontier.size,
            root=frontier.root(),
            qc=qc,
            tc=tc,
            entries=entries,
        ).known_leaf_hashes(leaves)
        # Durable before the proposal exists, with this validator's own vote for it (one
        # fsync): the vote is signed when the proposal comes back through local delivery.
        if self.safety.prepare_proposal(block, vote=True):
            self._prevoted = block.hash
        signature = self.signer.sign(proposal_message(self.committee.chain_id, view, block.hash))
        proposal = Proposal(block, signature)
        self._own = (proposal, frontier)
        self._broadcast(proposal)

    # -- votes, timeouts, certificates --------------------------------------------------

    def _on_vote(self, sender: str, v: Vote) -> None:
        if self.index is None:
            return
        if not self.config.broadcast_votes and self.committee.leader(v.view + 1) != self.index:
            return
        ensure(v.view + 1 >= self.view, StaleMessageError, f"vote for old view {v.view}")
        ensure(
            v.view <= self.view + self.config.max_views_ahead,
            StaleMessageError,
            f"vote for view {v.view}, too far ahead of {self.view}",
        )
        if (v.view, v.voter) in self._voted:
            return  # a duplicate, or an equivocating second vote: only the first counts
        bucket = self._votes.get((v.view, v.block_hash), {})
        if len(bucket) >= self.committee.quorum:
            return
        v.verify(self.committee)
        self._voted[(v.view, v.voter)] = v.block_hash
        bucket = self._votes.setdefault((v.view, v.block_hash), bucket)
        bucket[v.voter] = v.signature
        if len(bucket) == self.committee.quorum:
            qc = QuorumCert(v.view, v.block_hash, tuple(sorted(bucket.items())))
            self._process_qc(qc, sender)

    def _on_timeout(self, sender: str, t: Timeout) -> None:
        if self.index is None:
            return
        bucket = self._timeouts.get(t.view, {})
        if t.voter in bucket:
            return
        t.verify(self.committee)
        self._process_qc(t.high_qc, sender)
        if t.last_tc is not None:
            self._process_tc(t.last_tc)
        ensure(t.view >= self.view, StaleMessageError, f"timeout for old view {t.view}")
        ensure(
            t.view <= self.view + self.config.max_views_ahead,
            StaleMessageError,
            f"timeout for view {t.view}, too far ahead of {self.view}",
        )
        bucket = self._timeouts.setdefault(t.view, {})
        bucket[t.voter] = t
        if t.view == self.view:
            self._wake(force=True)  # someone expects this view to end: time it
        if (
            len(bucket) > self.committee.f
            and t.view == self.view
            and self._timeout_sent_view < t.view
        ):
            # f+1 timeouts include an honest one: this view is failing, join in early.
            self._local_timeout(t.view)
        if len(bucket) >= self.committee.quorum and (
            self.last_tc is None or self.last_tc.view < t.view
        ):
            high = max((x.high_qc for x in bucket.values()), key=lambda q: q.view)
            entries = tuple(sorted((s, x.high_qc.view, x.signature) for s, x in bucket.items()))
            self._process_tc(TimeoutCert(t.view, entries, high))

    def _process_qc(self, qc: QuorumCert, sender: str | None) -> None:
        """Adopt a verified QC: high QC, commit rule, view change; fetch its block."""
        self.safety.observe_qc(qc)
        if qc.block_hash not in self._certified and qc.view >= self.head.view:
            self._certified[qc.block_hash] = qc
            block = self.tree.get(qc.block_hash)
            if block is not None:
                self._on_certified(block)
            elif qc.view > self.head.view:
                self._request(qc.block_hash, sender)
        if self.is_validator:
            self._advance(qc.view + 1, by_qc=True)

    def _process_tc(self, tc: TimeoutCert) -> None:
        if self.last_tc is None or tc.view > self.last_tc.view:
            self.last_tc = tc
        self._process_qc(tc.high_qc, None)
        if self.is_validator:
            self._advance(tc.view + 1, by_qc=False)

    def _on_certified(self, block: Block) -> None:
        target = self.rules.committed_by(block, self.tree.get(block.parent_hash))
        if target is not None and target.height > self.head.height:
            self._commit(target)

    # -- views and timers --------------------------------------------------------------

    def _advance(self, view: int, *, by_qc: bool) -> None:
        if self.pacemaker.advance(view, by_qc=by_qc):
            self._enter_view()

    def _enter_view(self) -> None:
        view = self.view
        for key in [k for k in self._votes if k[0] + 1 < view]:
            del self._votes[key]
        for voted in [k for k in self._voted if k[0] + 1 < view]:
            del self._voted[voted]
        for old in [w for w in self._timeouts if w < view]:
            del self._timeouts[old]
        self._idle_leader_view = 0
        duration = self.pacemaker.duration_ms()
        # A quiet chain gives its leader a heartbeat to propose before timing out.
        self._parked = self.config.heartbeat_ms > 0 and not self._expects_progress()
        if self._parked:
            duration += self.config.heartbeat_ms
        self._arm_view_timer(duration)
        if self.index is not None and self.committee.leader(view) == self.index:
            self._schedule_proposal()

    def _arm_view_timer(self, delay_ms: int) -> None:
        if self._view_timer is not None:
            self._view_timer.cancel()
        view = self.view
        self._view_timer = self.clock.call_later(
            delay_ms, self._guarded(lambda: self._on_view_timer(view))
        )

    def _on_view_timer(self, view: int) -> None:
        if view != self.view:
            return
        self._parked = False
        self.pacemaker.timed_out()
        self._arm_view_timer(self.pacemaker.duration_ms())
        self._retry_sync()
        if self.is_validator:
            self._local_timeout(view)

    def _local_timeout(self, view: int) -> None:
        if self.signer is None or self.index is None:
            return
        self.safety.prepare_timeout(view)  # durable: never vote in this view afterwards
        self._prevoted = None  # nor cast a vote recorded with an earlier proposal
        self._timeout_sent_view = view
        qc = self.high_qc
        tc = self.last_tc if self.last_tc is not None and self.last_tc.view < view else None
        signature = self.signer.sign(timeout_message(self.committee.chain_id, view, qc.view))
        self._broadcast(Timeout(view, qc, tc, self.index, signature))

    # -- commit and checkpoints ----------------------------------------------------------

    def _commit(self, target: Block) -> None:
        chain = self.tree.path_from_head(target)
        if chain is None:
            raise SafetyViolationError(
                f"{self.name}: block {target.hash.hex()[:16]} at height {target.height} "
                f"does not extend committed block {self.head.height}"
            )
        for block in chain:
            apply_block(self.store, self.ledger, block)
            self.tree.set_head(block)
            if self.mempool is not None:
                self.mempool.remove(block.leaf_hashes)
            for listener in self.commit_listeners:
                listener(block)
            vote = self.checkpointer.sign(block)
            if vote is not None:
                self._broadcast(vote)
        self.tree.prune()
        for h in [h for h, qc in self._certified.items() if qc.view < self.head.view]:
            del self._certified[h]

    def _on_checkpoint_vote(self, v: CheckpointVote) -> None:
        self.checkpointer.receive(v)

    # -- catch-up ------------------------------------------------------------------------

    def _request(self, block_hash: bytes, sender: str | None) -> None:
        now = self.clock.now_ms()
        previous = self._requested.get(block_hash)
        if previous is not None and now - previous[0] < self.config.sync_retry_ms:
            return
        turn = 0 if previous is None else previous[1] + 1
        self._requested[block_hash] = (now, turn)
        peer = sender if sender is not None and sender != self.name and turn == 0 else None
        if peer is None:
            others = [n for n in self.committee.names() if n != self.name]
            peer = others[(turn + len(block_hash) + block_hash[0]) % len(others)]
        request = BlockRequest(block_hash, self.config.sync_batch, self.head.height)
        self.transport.send(peer, request)

    def _retry_sync(self) -> None:
        for block_hash in list(self._requested)[:16]:
            self._request(block_hash, None)

    def _on_block_request(self, sender: str, req: BlockRequest) -> None:
        req.verify(self.committee)
        blocks: list[Block] = []
        h = req.block_hash
        while len(blocks) < min(req.count, self.config.sync_batch):
            block = self.tree.get(h) or self.store.get_block(h)
            if block is None or block.height <= max(req.known_height, 0) or block.height == 0:
                break
            blocks.append(block)
            h = block.parent_hash
        if blocks:
            self.transport.send(sender, BlockResponse(tuple(blocks)))

    def _on_block_response(self, sender: str, resp: BlockResponse) -> None:
        blocks = resp.blocks
        ensure(
            bool(blocks) and blocks[0].hash in self._requested,
            InvalidMessageError,
            "unsolicited block response",
        )
        resp.verify(self.committee, self.config.limits)
        for block in reversed(blocks):
            if block.hash in self.tree or block.height <= self.head.height:
                continue
            self._process_qc(block.qc, sender)
            self._accept(block, sender, proposal=False)

    # -- sending -------------------------------------------------------------------------

    def _send(self, index: int, message: Message) -> None:
        name = self.committee.name(index)
        if name == self.name:
            self._deliver_local(message)
        else:
            self.transport.send(name, message)

    def _broadcast(self, message: Message) -> None:
        self.transport.broadcast(message)
        self._deliver_local(message)

    def _deliver_local(self, message: Message) -> None:
        self.clock.call_later(0, lambda: self.handle(self.name, message))
