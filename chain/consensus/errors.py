"""Errors of the consensus layer; all are :class:`chain.errors.ConsensusError`.

::

    ConsensusError
    ├── InvalidMessageError     a message or certificate that does not verify (signature,
    │                           signer, quorum, encoding); the peer is faulty or hostile
    ├── InvalidBlockError       a block that breaks a validity rule (leader, root, size, time)
    ├── UnsafeError             a vote, timeout or proposal the safety rules refuse to sign
    ├── StaleMessageError       a message for a view the replica has already left
    ├── UnknownBlockError       a message that refers to a block the replica does not have
    └── SafetyViolationError    two conflicting blocks would be committed: a bug or > f faults

``MempoolFullError`` (busy, retry later) lives in :mod:`chain.errors`.
"""

from __future__ import annotations

from chain.errors import ConsensusError


class InvalidMessageError(ConsensusError):
    """A message or certificate that does not verify against the committee."""


class InvalidBlockError(ConsensusError):
    """A block that breaks a validity rule (leader, certificate, root, size, timestamp)."""


class UnsafeError(ConsensusError):
    """The safety rules refuse to sign this vote, timeout or proposal."""


class StaleMessageError(ConsensusError):
    """A message for a view this replica has already left."""


class UnknownBlockError(ConsensusError):
    """A message refers to a block this replica does not have (yet)."""


class SafetyViolationError(ConsensusError):
    """Two conflicting blocks would be committed; never raised unless > f validators are faulty."""


def ensure(condition: bool, error: type[ConsensusError], message: str) -> None:
    """Raise ``error(message)`` unless ``condition`` holds: the guard of every handler."""
    if not condition:
        raise error(message)
