"""The consensus layer's errors and its handler guard :func:`ensure`.

The error classes belong to the one tree of :mod:`chain.errors` (drawn there), under
:class:`~chain.errors.ConsensusError`; they are re-exported here for the consensus code::

    ConsensusError
    ├── InvalidMessageError     a message or certificate that does not verify
    ├── InvalidBlockError       a block that breaks a validity rule
    ├── UnsafeError             a vote, timeout or proposal the safety rules refuse to sign
    ├── StaleMessageError       a message for a view the replica has already left
    ├── UnknownBlockError       a message that refers to a block the replica does not have
    └── SafetyViolationError    two conflicting blocks would be committed

``MempoolFullError`` (busy, retry later) is a sibling of ``ConsensusError``.
"""

from __future__ import annotations

from chain.errors import (
    ConsensusError,
    InvalidBlockError,
    InvalidMessageError,
    SafetyViolationError,
    StaleMessageError,
    UnknownBlockError,
    UnsafeError,
)

__all__ = [
    "ConsensusError",
    "InvalidBlockError",
    "InvalidMessageError",
    "SafetyViolationError",
    "StaleMessageError",
    "UnknownBlockError",
    "UnsafeError",
    "ensure",
]


def ensure(condition: bool, error: type[ConsensusError], message: str) -> None:
    """Raise ``error(message)`` unless ``condition`` holds: the guard of every handler."""
    if not condition:
        raise error(message)
