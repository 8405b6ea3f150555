"""Builders of validly signed blocks and certificates for unit tests (n = 4, f = 1)."""

from __future__ import annotations

from chain.consensus.blocks import (
    GENESIS,
    GENESIS_QC,
    Block,
    QuorumCert,
    TimeoutCert,
    payload_digest,
    timeout_message,
    vote_message,
)
from chain.consensus.committee import Committee
from chain.consensus.messages import Proposal, Timeout, Vote, proposal_message
from chain.merkle import CompactRange, leaf_hash
from chain.sim.runner import CHAIN_ID, signers, trust_file

KEYS = signers(4)
TRUST = trust_file(4)
COMMITTEE = Committee(TRUST)
NOW = 1_700_000_000_000


def vote(i: int, view: int, block_hash: bytes) -> Vote:
    return Vote(view, block_hash, i, KEYS[i].sign(vote_message(CHAIN_ID, view, block_hash)))


def qc_for(block: Block, voters: tuple[int, ...] = (0, 1, 2)) -> QuorumCert:
    sigs = tuple(
        (i, KEYS[i].sign(vote_message(CHAIN_ID, block.view, block.hash))) for i in sorted(voters)
    )
    return QuorumCert(block.view, block.hash, sigs)


def timeout(i: int, view: int, high_qc: QuorumCert, last_tc: TimeoutCert | None = None) -> Timeout:
    sig = KEYS[i].sign(timeout_message(CHAIN_ID, view, high_qc.view))
    return Timeout(view, high_qc, last_tc, i, sig)


def tc_for(view: int, high_qcs: dict[int, QuorumCert]) -> TimeoutCert:
    entries = tuple(
        sorted(
            (i, q.view, KEYS[i].sign(timeout_message(CHAIN_ID, view, q.view)))
            for i, q in high_qcs.items()
        )
    )
    high = max(high_qcs.values(), key=lambda q: q.view)
    return TimeoutCert(view, entries, high)


def child(
    parent: Block,
    frontier: CompactRange,
    *,
    view: int | None = None,
    qc: QuorumCert | None = None,
    tc: TimeoutCert | None = None,
    entries: tuple[bytes, ...] = (),
    proposer: int | None = None,
    timestamp: int | None = None,
) -> tuple[Block, CompactRange]:
    """A valid child of ``parent`` (whose log frontier is ``frontier``)."""
    view = view if view is not None else parent.view + 1
    qc = qc if qc is not None else (GENESIS_QC if parent is GENESIS else qc_for(parent))
    after = frontier.append([leaf_hash(e) for e in entries])
    block = Block(
        height=parent.height + 1,
        view=view,
        parent_hash=parent.hash,
        proposer=proposer if proposer is not None else COMMITTEE.leader(view),
        timestamp_ms=timestamp if timestamp is not None else NOW + view,
        payload_digest=payload_digest(entries),
        tree_size=after.size,
        root=after.root(),
        qc=qc,
        tc=tc,
        entries=entries,
    )
    return block, after


def propose(block: Block, signer: int | None = None) -> Proposal:
    i = block.proposer if signer is None else signer
    return Proposal(block, KEYS[i].sign(proposal_message(CHAIN_ID, block.view, block.hash)))
