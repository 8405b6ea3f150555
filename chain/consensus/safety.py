"""Safety rules: when a validator may vote, time out or propose, and what commits.

The rules are those of Jolteon / DiemBFT v4 (two-chain HotStuff); ``docs/consensus.md``
argues why no two honest validators commit conflicting blocks when at most f are faulty.

* Vote for block B of view r only if ``r > last_voted_view`` and either
  ``B.qc.view == r - 1`` or B carries a TC of view ``r - 1`` with
  ``B.qc.view >= TC.max_high_qc_view``.
* Time out of any view r; afterwards never vote in r (``last_voted_view := max(.., r)``).
  A timeout of a view below the last voted one is harmless: it carries the high QC,
  which only grows, and a vote is never cast in a view after a timeout of that view.
* Propose in view r only if ``r > last_proposed_view``.
* Commit B (and its ancestors) once a QC exists for a child B' of B with
  ``B'.view == B.view + 1`` (a direct two-chain).

:class:`SafetyRules` persists the new state (and the store fsyncs it) *before* it returns
the signed message, so the message can only leave after its state is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from chain.consensus.blocks import GENESIS_QC, Block, QuorumCert
from chain.consensus.errors import UnsafeError, ensure


@dataclass(frozen=True)
class SafetyState:
    """What a validator must remember across crashes to never equivocate."""

    last_voted_view: int = 0
    last_proposed_view: int = 0
    high_qc: QuorumCert = GENESIS_QC


class SafetyStore(Protocol):
    """Durable storage of the :class:`SafetyState`."""

    def load_safety(self) -> SafetyState | None:
        """The last saved state, or None on first start."""
        ...

    def save_safety(self, state: SafetyState) -> None:
        """Save ``state`` durably (fsync'd) before returning."""
        ...


class Rules:
    """The voting and commit rules as pure predicates (subclassed only by the simulation's
    deliberately broken variants)."""

    def check_vote(self, state: SafetyState, block: Block) -> None:
        """Raise :class:`UnsafeError` unless voting for ``block`` is safe in ``state``."""
        ensure(
            block.view > state.last_voted_view,
            UnsafeError,
            f"already voted or timed out in view {state.last_voted_view} >= {block.view}",
        )
        if block.qc.view + 1 == block.view:
            return
        tc = block.tc
        ensure(
            tc is not None and tc.view + 1 == block.view and block.qc.view >= tc.max_high_qc_view,
            UnsafeError,
            f"block of view {block.view} does not extend the highest QC its TC reports",
        )

    def check_timeout(self, state: SafetyState, view: int) -> None:
        """Raise :class:`UnsafeError` unless timing out of ``view`` is allowed (always:
        the high QC a timeout carries never decreases)."""
        ensure(view >= 1, UnsafeError, "no timeout of the genesis view")

    def check_proposal(self, state: SafetyState, block: Block) -> None:
        """Raise :class:`UnsafeError` unless proposing ``block`` is allowed."""
        ensure(
            block.view > state.last_proposed_view,
            UnsafeError,
            f"already proposed in view {state.last_proposed_view} >= {block.view}",
        )

    def committed_by(self, certified: Block, parent: Block | None) -> Block | None:
        """The block that a QC for ``certified`` commits, if any (two-chain rule)."""
        if parent is not None and certified.view == parent.view + 1:
            return parent
        return None


class SafetyRules:
    """Holds the safety state; checks, persists, then lets the caller sign."""

    def __init__(self, store: SafetyStore, rules: Rules | None = None) -> None:
        """Load the state from ``store`` (a fresh state on first start)."""
        self._store = store
        self.rules = rules or Rules()
        self.state = store.load_safety() or SafetyState()

    def _persist(self, state: SafetyState) -> None:
        self._store.save_safety(state)
        self.state = state

    def observe_qc(self, qc: QuorumCert) -> bool:
        """Remember ``qc`` as the high QC if it is higher; True if it was.

        Not persisted here: the high QC only matters once a vote or timeout carries it,
        and those persist it first.
        """
        if qc.view > self.state.high_qc.view:
            self.state = replace(self.state, high_qc=qc)
            return True
        return False

    def prepare_vote(self, block: Block) -> None:
        """Check and durably record a vote for ``block``; the caller signs afterwards."""
        self.rules.check_vote(self.state, block)
        high = block.qc if block.qc.view > self.state.high_qc.view else self.state.high_qc
        self._persist(replace(self.state, last_voted_view=block.view, high_qc=high))

    def prepare_timeout(self, view: int) -> None:
        """Check and durably record a timeout of ``view``; the caller signs afterwards."""
        self.rules.check_timeout(self.state, view)
        self._persist(replace(self.state, last_voted_view=max(view, self.state.last_voted_view)))

    def prepare_proposal(self, block: Block, *, vote: bool = False) -> bool:
        """Check and durably record a proposal of ``block``; the caller signs afterwards.

        With ``vote``, also record the proposer's own vote for ``block`` in the same
        write when the vote rule allows it (one fsync instead of two); returns whether
        it did, i.e. whether the caller may sign that vote without :meth:`prepare_vote`.
        """
        self.rules.check_proposal(self.state, block)
        state = replace(self.state, last_proposed_view=block.view)
        voted = False
        if vote:
            try:
                self.rules.check_vote(state, block)
                voted = True
            except UnsafeError:
                pass
        if voted:
            high = block.qc if block.qc.view > state.high_qc.view else state.high_qc
            state = replace(state, last_voted_view=block.view, high_qc=high)
        self._persist(state)
        return voted
