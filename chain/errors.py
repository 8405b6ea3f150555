"""Errors of the ledger.

Every error that leaves ``chain`` is a :class:`ChainError`::

    ChainError
    ├── ProofError                  a Merkle proof that does not verify (carries both roots)
    │   ├── InclusionProofError
    │   └── ConsistencyProofError
    ├── LogError                    the persisted log is corrupt, or a request is out of range
    ├── NoteError                   a signed note or checkpoint that is malformed
    │   └── KeyNameError            a key name, origin or verifier key breaking signed-note rules
    ├── CheckpointError             a checkpoint that is not committed (too few valid signatures)
    │   ├── CheckpointOriginError   its origin is not the trust file's chain id
    │   └── QuorumNotMetError       fewer valid distinct trusted signatures than the threshold
    ├── TrustFileError              a trust/genesis file that is malformed or inconsistent
    ├── KeyFileError                a key file that is malformed or unreadable
    ├── ConsensusError              a consensus message or block that breaks a rule
    └── MempoolFullError            the mempool is full: the client should retry later

Modules add subclasses at the end of this file, one line of docstring each,
and extend the tree above.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base of every error raised by the ledger."""


class ProofError(ChainError):
    """A Merkle proof that does not verify; carries the expected and calculated roots."""

    def __init__(
        self, message: str, *, expected: bytes | None = None, calculated: bytes | None = None
    ) -> None:
        if expected is not None and calculated is not None:
            message = f"{message}: expected root {expected.hex()}, calculated {calculated.hex()}"
        super().__init__(message)
        self.expected = expected
        self.calculated = calculated


class InclusionProofError(ProofError):
    """An inclusion proof that does not lead to the expected root, or is malformed."""


class ConsistencyProofError(ProofError):
    """A consistency proof that does not link the two roots, or is malformed."""


class LogError(ChainError):
    """The persisted log is corrupt, or a request is out of its range."""


class NoteError(ChainError):
    """A signed note or checkpoint body that is malformed."""


class CheckpointError(ChainError):
    """A checkpoint without enough valid signatures of trusted validators."""


class TrustFileError(ChainError):
    """A trust (genesis) file that is malformed or inconsistent."""


class KeyFileError(ChainError):
    """A key file that is malformed or unreadable."""


class ConsensusError(ChainError):
    """A consensus message or block that breaks a protocol rule."""


class MempoolFullError(ChainError):
    """The mempool is at its bound; the client should retry later."""


class KeyNameError(NoteError):
    """A key name, origin or verifier key string that breaks the signed-note rules."""


class CheckpointOriginError(CheckpointError):
    """A checkpoint whose origin is not the chain id of the trust file."""


class QuorumNotMetError(CheckpointError):
    """A checkpoint with fewer valid signatures of distinct trusted validators than needed."""

    def __init__(self, message: str, *, valid: int, needed: int, signers: tuple[str, ...]) -> None:
        super().__init__(message)
        self.valid = valid
        self.needed = needed
        self.signers = signers
