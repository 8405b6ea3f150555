"""The pacemaker: which view a replica is in and how long it waits in it.

A replica enters view r+1 on a QC or a TC of view r. The timeout of a view is
``base * multiplier**k`` capped at ``max_ms``, where k counts views that ended without a
QC since the last one that ended with a QC: timeouts grow while views fail, so after
the network stabilises honest replicas eventually spend long enough together in one view
with an honest leader (liveness), and reset as soon as the chain makes progress.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PacemakerConfig:
    """Timeout parameters in milliseconds."""

    base_ms: int = 1_000
    max_ms: int = 30_000
    multiplier: float = 2.0


class Pacemaker:
    """View number and view-timeout growth; no timers of its own (the core sets them)."""

    def __init__(self, config: PacemakerConfig, view: int = 1) -> None:
        """Start in ``view`` with no failures recorded."""
        self.config = config
        self.view = view
        self.failures = 0

    def advance(self, view: int, *, by_qc: bool) -> bool:
        """Enter ``view`` if it is later than the current one; True if it was.

        ``by_qc``: the previous view ended with a QC (progress), so timeouts reset.
        """
        if view <= self.view:
            return False
        self.view = view
        if by_qc:
            self.failures = 0
        return True

    def timed_out(self) -> None:
        """Record that the current view timed out locally."""
        self.failures += 1

    def duration_ms(self) -> int:
        """How long to wait in the current view before timing out."""
        c = self.config
        return int(min(c.max_ms, c.base_ms * c.multiplier ** min(self.failures, 32)))
