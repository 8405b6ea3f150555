"""Deliberately unsafe rule variants. The simulation's checks must flag them; a test
asserts they do within a bounded number of seeds, which shows the checks have teeth."""

from __future__ import annotations

from chain.consensus.blocks import Block
from chain.consensus.errors import UnsafeError, ensure
from chain.consensus.safety import Rules, SafetyState


class OneChainCommit(Rules):
    """Commits a block as soon as it has a QC (instead of a QC on a direct child)."""

    def committed_by(self, certified: Block, parent: Block | None) -> Block | None:
        """The certified block itself."""
        return certified


class NoLockVote(Rules):
    """Votes for any block of a new view, ignoring the TC's highest QC (no lock)."""

    def check_vote(self, state: SafetyState, block: Block) -> None:
        """Only the view check."""
        ensure(block.view > state.last_voted_view, UnsafeError, "already voted")


VARIANTS: dict[str, type[Rules]] = {
    "correct": Rules,
    "one-chain-commit": OneChainCommit,
    "no-lock-vote": NoLockVote,
}
