"""Errors of the ledger: every error that leaves ``chain`` is a :class:`ChainError`.

All of them are defined here; the modules that raise them re-export theirs (e.g.
``chain.consensus.errors.InvalidMessageError`` and ``chain.node.results.NotFoundError``
are these very classes)::

    ChainError
    ├── ProofError                  a Merkle proof that does not verify (carries both roots)
    │   ├── InclusionProofError
    │   └── ConsistencyProofError
    ├── LogError                    the persisted log is corrupt, or a request is out of range
    ├── StoreError                  the consensus store cannot be opened, read or written
    ├── NoteError                   a signed note or checkpoint that is malformed
    │   └── KeyNameError            a key name, origin or verifier key breaking signed-note rules
    ├── CheckpointError             a checkpoint that is not committed (too few valid signatures)
    │   ├── CheckpointOriginError   its origin is not the trust file's chain id
    │   └── QuorumNotMetError       fewer valid distinct trusted signatures than the threshold
    ├── TrustFileError              a trust/genesis file that is malformed or inconsistent
    ├── KeyFileError                a key file that is malformed or unreadable
    ├── ConsensusError              a consensus message or block that breaks a rule
    │   ├── InvalidMessageError     a message or certificate that does not verify (signature,
    │   │                           signer, quorum, encoding): the peer is faulty or hostile
    │   ├── InvalidBlockError       a block breaking a validity rule (leader, root, size, time)
    │   ├── UnsafeError             a vote, timeout or proposal the safety rules refuse to sign
    │   ├── StaleMessageError       a message for a view the replica has already left
    │   ├── UnknownBlockError       a message referring to a block the replica does not have
    │   └── SafetyViolationError    two conflicting blocks would be committed (> f faults or a bug)
    ├── MempoolFullError            the mempool is full, or too few validators took a copy of
    │                               a submission: busy, the client should retry later (503)
    ├── ConfigError                 an invalid node configuration (names file and setting)
    ├── EntryError                  a submitted entry is empty or too large, or the node is an
    │                               observer (422)
    ├── BatchTooLargeError          a submission above the node's per-request limits (413)
    ├── NotFoundError               an entry, block, checkpoint or tree size not (yet) known (404)
    ├── CommitTimeoutError          an entry not committed within the time asked (client side)
    └── LedgerClientError           the ledger answered with an unexpected problem, or no
                                    validator was reachable (carries HTTP status and code)

A new error is added here, one line of docstring, and drawn in the tree above.
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


class StoreError(ChainError):
    """The consensus store cannot be opened, read or written."""


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
    """The mempool is at its bound (or a submission could not be replicated); retry later."""


class ConfigError(ChainError):
    """An invalid node configuration; the message names the file and the setting."""


class EntryError(ChainError):
    """A submitted entry is empty, too large, or the batch is malformed (HTTP 422)."""


class BatchTooLargeError(ChainError):
    """A submitted batch exceeds the node's per-request limits (HTTP 413)."""


class NotFoundError(ChainError):
    """The requested entry, block, checkpoint or tree size is not (yet) known (HTTP 404)."""


class CommitTimeoutError(ChainError):
    """The entry was not committed within the requested time (client side)."""


class LedgerClientError(ChainError):
    """The ledger answered with an unexpected problem, or no validator was reachable."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        """``status``/``code``: the HTTP status and problem code, if any."""
        super().__init__(message)
        self.status = status
        self.code = code


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
