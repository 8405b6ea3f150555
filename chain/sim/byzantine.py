"""Byzantine behaviours: wrappers around an honest core's traffic.

A faulty validator runs the honest :class:`Core` with its real key, and its behaviour
rewrites what it sends and adds what an attacker would send. All signatures an attacker
could really produce are real; the forged ones are exactly what it could not produce.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

from chain.consensus.blocks import QuorumCert, payload_digest, timeout_message, vote_message
from chain.consensus.messages import Message, Proposal, Timeout, Vote, proposal_message
from chain.keys import Signer
from chain.sim.node import SimNode

FOREIGN = Signer.from_seed("intruder", hashlib.sha256(b"sim/foreign-key").digest())


class Behaviour:
    """Passes traffic through unchanged (used for twins: honest code, shared key)."""

    kind = "twin"

    def __init__(self, rng: random.Random) -> None:
        """Behaviours draw from the simulation's RNG only."""
        self.rng = rng

    def outgoing(self, node: SimNode, to: str, message: Message) -> None:
        """What the node sends when its core sends ``message`` to ``to``."""
        node.raw_send(to, message)

    def incoming(self, node: SimNode, sender: str, message: Message) -> None:
        """Extra actions when ``message`` arrives (before the core sees it)."""


class Silent(Behaviour):
    """Sends nothing at all."""

    kind = "silent"

    def outgoing(self, node: SimNode, to: str, message: Message) -> None:
        """Drop."""


class Equivocator(Behaviour):
    """As leader, proposes two different blocks for one view to different halves."""

    kind = "equivocate"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._twin: dict[bytes, Proposal] = {}

    def outgoing(self, node: SimNode, to: str, message: Message) -> None:
        """Half of the peers get a conflicting block of the same view."""
        if isinstance(message, Proposal) and node.signer is not None:
            other = self._twin.get(message.block.hash)
            if other is None:
                block = dataclasses.replace(
                    message.block, timestamp_ms=message.block.timestamp_ms + 1
                )
                sig = node.signer.sign(
                    proposal_message(node.committee.chain_id, block.view, block.hash)
                )
                other = self._twin[message.block.hash] = Proposal(block, sig)
            if sum(to.encode()) % 2:
                message = other
        node.raw_send(to, message)


class DoubleVoter(Behaviour):
    """Votes for every proposal it sees, and sends a second vote for a bogus block."""

    kind = "double-vote"

    def incoming(self, node: SimNode, sender: str, message: Message) -> None:
        """Vote for anything, regardless of the safety rules."""
        if isinstance(message, Proposal) and node.signer is not None and node.core is not None:
            self._vote(node, message.block.view, message.block.hash)

    def outgoing(self, node: SimNode, to: str, message: Message) -> None:
        """Each real vote is followed by a conflicting one."""
        node.raw_send(to, message)
        if isinstance(message, Vote):
            self._vote(node, message.view, self.rng.randbytes(32))

    def _vote(self, node: SimNode, view: int, block_hash: bytes) -> None:
        assert node.signer is not None and node.core is not None
        index = node.core.index
        assert index is not None
        sig = node.signer.sign(vote_message(node.committee.chain_id, view, block_hash))
        leader = node.committee.name(node.committee.leader(view + 1))
        node.raw_send(leader, Vote(view, block_hash, index, sig))


class Forger(Behaviour):
    """Sends messages with forged or foreign signatures and certificates with too few or
    duplicated signers, and malformed blocks (wrong root, digest, time, size)."""

    kind = "forge"

    def outgoing(self, node: SimNode, to: str, message: Message) -> None:
        """Replace proposals by invalid ones; add forged votes and timeouts."""
        if isinstance(message, Proposal) and node.signer is not None:
            message = self._bad_proposal(node, message)
        node.raw_send(to, message)
        if isinstance(message, Vote | Timeout) and self.rng.random() < 0.5:
            node.raw_send(to, self._forged(node, message.view))

    def _forged_qc(self, node: SimNode, view: int, block_hash: bytes) -> QuorumCert:
        assert node.signer is not None and node.core is not None and node.core.index is not None
        me = node.core.index
        chain = node.committee.chain_id
        own = node.signer.sign(vote_message(chain, view, block_hash))
        quorum = node.committee.quorum
        others = [i for i in range(node.committee.size) if i != me][: quorum - 1]
        choice = self.rng.randrange(4)
        if choice == 0:  # one real signature, repeated
            sigs = tuple((me, own) for _ in range(quorum))
        elif choice == 1:  # too few signers
            sigs = ((me, own),)
        elif choice == 2:  # others' signatures are random bytes
            sigs = tuple(sorted([(me, own)] + [(i, self.rng.randbytes(64)) for i in others]))
        else:  # others' signatures are real ones for another chain (foreign)
            foreign = FOREIGN.sign(vote_message(chain, view, block_hash))
            wrong_chain = node.signer.sign(vote_message(chain + ".other", view, block_hash))
            sigs = tuple(sorted([(me, wrong_chain)] + [(i, foreign) for i in others]))
        return QuorumCert(view, block_hash, sigs)

    def _forged(self, node: SimNode, view: int) -> Message:
        assert node.signer is not None and node.core is not None and node.core.index is not None
        chain = node.committee.chain_id
        me = node.core.index
        victim = self.rng.randrange(node.committee.size)
        if self.rng.random() < 0.5:
            h = self.rng.randbytes(32)
            sig = FOREIGN.sign(vote_message(chain, view, h))
            return Vote(view, h, victim, sig)
        qc = self._forged_qc(node, view, self.rng.randbytes(32))
        sig = node.signer.sign(timeout_message(chain, view + 1, qc.view))
        return Timeout(view + 1, qc, None, me, sig)

    def _bad_proposal(self, node: SimNode, p: Proposal) -> Proposal:
        assert node.signer is not None
        block = p.block
        choice = self.rng.randrange(5)
        if choice == 0:
            block = dataclasses.replace(block, root=self.rng.randbytes(32))
        elif choice == 1:
            block = dataclasses.replace(block, payload_digest=payload_digest((b"x",)))
        elif choice == 2:
            block = dataclasses.replace(block, timestamp_ms=block.timestamp_ms - 10**6)
        elif choice == 3:
            block = dataclasses.replace(
                block, qc=self._forged_qc(node, block.qc.view, block.qc.block_hash)
            )
        else:
            block = dataclasses.replace(block, tree_size=block.tree_size + 1)
        sig = node.signer.sign(proposal_message(node.committee.chain_id, block.view, block.hash))
        return Proposal(block, sig)


class Replayer(Behaviour):
    """Records what it receives and replays old messages to random peers."""

    kind = "replay"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._seen: list[tuple[str, Message]] = []

    def incoming(self, node: SimNode, sender: str, message: Message) -> None:
        """Remember; sometimes replay an old message."""
        if len(self._seen) < 400:
            self._seen.append((sender, message))
        if self._seen and self.rng.random() < 0.3:
            _, old = self.rng.choice(self._seen)
            node.raw_send(self.rng.choice(node.network.names()), old)


BEHAVIOURS: dict[str, type[Behaviour]] = {
    b.kind: b for b in (Behaviour, Silent, Equivocator, DoubleVoter, Forger, Replayer)
}
