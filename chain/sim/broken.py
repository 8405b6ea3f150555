"""Deliberately unsafe rule variants. The simulation's checks must flag them; a test
asserts they do within a bounded number of seeds, which shows the checks have teeth.

(A variant that votes without the TC's highest-QC check cannot even be expressed here:
the same condition is part of block validity, ``Block.verify``, so such blocks are
rejected before any vote rule runs.)"""

from __future__ import annotations

from chain.consensus.blocks import Block
from chain.consensus.safety import Rules


class OneChainCommit(Rules):
    """Commits a block as soon as it has a QC (instead of a QC on a direct child)."""

    def committed_by(self, certified: Block, parent: Block | None) -> Block | None:
        """The certified block itself."""
        return certified


VARIANTS: dict[str, type[Rules]] = {
    "correct": Rules,
    "one-chain-commit": OneChainCommit,
}
