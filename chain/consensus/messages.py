"""Consensus messages. Each is signed by its sender, bound to the chain id, its type (the
domain tag) and its view, and verifies itself against the committee (``verify``).

==================  ==========================================  ===========================
message             signed bytes                                sent to
==================  ==========================================  ===========================
Proposal            tag "proposal", chain id, view, block hash  everyone (incl. observers)
Vote                tag "vote", chain id, view, block hash      every validator (or next leader)
Timeout             tag "timeout", chain id, view, high-QC view every validator
CheckpointVote      the C2SP checkpoint body (signed note)      everyone
BlockRequest        not signed: a read, answered with data      one peer
BlockResponse       not signed: every block is certified        the requester
==================  ==========================================  ===========================

Sync messages need no signature of their own: a request only reads, and a response is
accepted only as a chain of blocks hashing up to a hash the requester asked for, each
block carrying a valid QC of its parent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from chain.checkpoint import Checkpoint
from chain.consensus.blocks import (
    HASH_SIZE,
    SIGNATURE_SIZE,
    Block,
    Limits,
    QuorumCert,
    TimeoutCert,
    timeout_message,
    vote_message,
)
from chain.consensus.committee import Committee
from chain.consensus.encoding import tagged
from chain.consensus.errors import InvalidBlockError, InvalidMessageError, ensure
from chain.keys import key_hash
from chain.note import NoteSignature


def proposal_message(chain_id: str, view: int, block_hash: bytes) -> bytes:
    """The bytes a leader signs to propose ``block_hash`` in ``view``."""
    return tagged("proposal").text(chain_id).u64(view).blob(block_hash).getvalue()


@dataclass(frozen=True)
class Proposal:
    """A leader's block for its view, signed by the leader."""

    block: Block
    signature: bytes

    @property
    def view(self) -> int:
        """The view of the proposed block."""
        return self.block.view

    def verify(self, committee: Committee, limits: Limits) -> None:
        """Raise unless signed by the leader of the block's view and the block is valid."""
        block = self.block
        ensure(
            block.proposer == committee.leader(block.view),
            InvalidBlockError,
            f"validator {block.proposer} is not the leader of view {block.view}",
        )
        ensure(
            committee.verify(
                block.proposer,
                proposal_message(committee.chain_id, block.view, block.hash),
                self.signature,
            ),
            InvalidMessageError,
            f"bad proposal signature for view {block.view}",
        )
        block.verify(committee, limits)


@dataclass(frozen=True)
class Vote:
    """A validator's vote for ``block_hash`` in ``view``."""

    view: int
    block_hash: bytes
    voter: int
    signature: bytes

    def verify(self, committee: Committee) -> None:
        """Raise unless the signature is the voter's over (chain id, view, block hash)."""
        ensure(len(self.block_hash) == HASH_SIZE, InvalidMessageError, "bad block hash")
        ensure(
            committee.verify(
                self.voter,
                vote_message(committee.chain_id, self.view, self.block_hash),
                self.signature,
            ),
            InvalidMessageError,
            f"bad vote signature from {self.voter} for view {self.view}",
        )


@dataclass(frozen=True)
class Timeout:
    """A validator gives up on ``view``; it carries its highest QC and its highest TC (so a
    lagging receiver, e.g. one just restarted, can follow it into its view)."""

    view: int
    high_qc: QuorumCert
    last_tc: TimeoutCert | None
    voter: int
    signature: bytes

    def verify(self, committee: Committee) -> None:
        """Raise unless signed by the voter and the carried certificates are valid."""
        ensure(self.high_qc.view < self.view, InvalidMessageError, "high QC not below view")
        ensure(
            committee.verify(
                self.voter,
                timeout_message(committee.chain_id, self.view, self.high_qc.view),
                self.signature,
            ),
            InvalidMessageError,
            f"bad timeout signature from {self.voter} for view {self.view}",
        )
        self.high_qc.verify(committee)
        if self.last_tc is not None:
            ensure(self.last_tc.view < self.view, InvalidMessageError, "TC not below view")
            self.last_tc.verify(committee)


@dataclass(frozen=True)
class CheckpointVote:
    """A validator's signed-note signature over the checkpoint of a committed block."""

    height: int
    tree_size: int
    root: bytes
    voter: int
    signature: bytes

    def checkpoint(self, chain_id: str) -> Checkpoint:
        """The checkpoint this vote signs."""
        return Checkpoint(origin=chain_id, size=self.tree_size, root=self.root)

    def note_signature(self, committee: Committee) -> NoteSignature:
        """The signed-note signature line of this vote (precondition: voter is a member)."""
        member = committee.members[self.voter]
        return NoteSignature(member.name, key_hash(member.name, member.public_key), self.signature)

    def verify(self, committee: Committee) -> None:
        """Raise unless the signature is the voter's signed-note signature of the body."""
        ensure(committee.is_member(self.voter), InvalidMessageError, "unknown checkpoint signer")
        ensure(len(self.signature) == SIGNATURE_SIZE, InvalidMessageError, "bad signature size")
        # The signed-note line's name and key hash are the member's own (note_signature),
        # so what remains to check is the Ed25519 signature over the body, by the member.
        body = self.checkpoint(committee.chain_id).body()
        ensure(
            committee.verify(self.voter, body.encode("utf-8"), self.signature),
            InvalidMessageError,
            f"bad checkpoint signature from {self.voter} at size {self.tree_size}",
        )


@dataclass(frozen=True)
class BlockRequest:
    """Ask for up to ``count`` blocks: ``block_hash`` and its ancestors above ``known_height``."""

    block_hash: bytes
    count: int
    known_height: int

    def verify(self, committee: Committee) -> None:
        """Raise unless the request is well formed (it carries no signature: it only reads)."""
        ensure(len(self.block_hash) == HASH_SIZE, InvalidMessageError, "bad block hash")
        ensure(self.count >= 1, InvalidMessageError, "asks for no blocks")


@dataclass(frozen=True)
class BlockResponse:
    """Blocks newest first: ``blocks[0].hash`` is the requested hash, each next one the
    parent of the previous one."""

    blocks: tuple[Block, ...]

    def verify(self, committee: Committee, limits: Limits) -> None:
        """Raise unless the blocks chain by hash and each is valid with its certificates.

        Whether ``blocks[0]`` was asked for is the receiver's check; given that, every block
        is certified: the first by the QC that named it, each next one by its child's QC.
        """
        ensure(bool(self.blocks), InvalidMessageError, "empty block response")
        for child, parent in itertools.pairwise(self.blocks):
            ensure(child.parent_hash == parent.hash, InvalidMessageError, "blocks do not chain")
        for block in self.blocks:
            block.verify(committee, limits)


Message = Proposal | Vote | Timeout | CheckpointVote | BlockRequest | BlockResponse
