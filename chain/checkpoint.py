"""Checkpoints (C2SP tlog-checkpoint bodies) signed by validators as signed notes.

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n`` plus optional extension
lines; the origin is the chain id. Each validator signs the body as a signed
note (``chain.note``). A checkpoint is *committed* when it carries valid
signatures of at least ``trust.threshold`` distinct validators of the trust file.
Unknown, invalid, duplicate and malformed signature lines are ignored, never
counted, and never make an otherwise committed checkpoint fail: a forged line
can be appended by anyone who relays the note. ``docs/checkpoint-format.md`` is
the specification.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from chain.errors import CheckpointOriginError, KeyNameError, NoteError, QuorumNotMetError
from chain.keys import Signer, check_key_name, decode_b64, verify_signature
from chain.note import (
    MAX_SIGNATURES,
    NoteSignature,
    SignatureVerifier,
    format_note,
    note_signature,
    parse_note,
    parse_signature_line,
    verify_note_signature,
)
from chain.trust import TrustFile, Validator

ROOT_SIZE = 32
# Go's tlog tooling reads sizes as int64; staying below keeps checkpoints portable.
MAX_TREE_SIZE = (1 << 63) - 1
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head of the log: origin (chain id), tree size, 32-byte root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            check_key_name(self.origin, what="checkpoint origin")
        except KeyNameError as e:
            raise NoteError(str(e)) from None
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise NoteError("checkpoint root must be 32 bytes")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body (the note text, with its final newline) strictly.

    At least three lines; the origin a valid key name; the size ASCII decimal
    without leading zeros (``0`` for the empty tree) and at most 2^63 - 1; the
    root canonical standard base64 of 32 bytes; extension lines non-empty.
    Raises :class:`NoteError`.
    """
    if not isinstance(body, str) or not body.endswith("\n"):
        raise NoteError("checkpoint body does not end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint body has fewer than three lines")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE_RE.fullmatch(size_text):
        raise NoteError(f"checkpoint size {size_text[:40]!r} is not a canonical decimal number")
    root = decode_b64(root_text)
    if root is None or len(root) != ROOT_SIZE:
        raise NoteError("checkpoint root is not canonical base64 of 32 bytes")
    if any(not line for line in extensions):
        raise NoteError("checkpoint body has an empty extension line")
    checkpoint = Checkpoint(
        origin=origin, size=int(size_text), root=root, extensions=tuple(extensions)
    )
    if checkpoint.body() != body:  # belt and braces: the parse must round-trip exactly
        raise NoteError("checkpoint body is not in canonical form")
    return checkpoint


def checkpoint_signature(checkpoint: Checkpoint, signer: Signer) -> NoteSignature:
    """``signer``'s signed-note signature over the checkpoint body."""
    return note_signature(checkpoint.body(), signer)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """``signer``'s signature line over the checkpoint body (``"— name base64\\n"``)."""
    return checkpoint_signature(checkpoint, signer).line


def verify_checkpoint_signature(
    checkpoint: Checkpoint, signature: str | NoteSignature, validator: Validator
) -> bool:
    """Whether ``signature`` (a line or parsed) is ``validator``'s valid signature.

    Never raises: a malformed line is simply not valid.
    """
    if isinstance(signature, str):
        try:
            signature = parse_signature_line(signature)
        except NoteError:
            return False
    return verify_note_signature(checkpoint.body(), signature, validator.name, validator.public_key)


def assemble_checkpoint(checkpoint: Checkpoint, signature_lines: Iterable[str]) -> str:
    """The signed checkpoint note: body, blank line, the given signature lines.

    Lines are parsed strictly (:class:`NoteError` if malformed); identical lines
    are kept once. Signatures are not verified here; use :func:`verify_checkpoint`.
    """
    signatures: list[NoteSignature] = []
    for line in signature_lines:
        signature = parse_signature_line(line)
        if signature not in signatures:
            signatures.append(signature)
    return format_note(checkpoint.body(), signatures)


class SignatureStatus(enum.Enum):
    """What one signature line of a checkpoint note counts for."""

    VALID = "valid"  # a trusted validator's valid signature: counts once
    INVALID = "invalid"  # names a trusted key (name and key hash) but does not verify
    UNKNOWN = "unknown"  # name or key hash of no trusted validator
    DUPLICATE = "duplicate"  # a further valid signature of a validator already counted
    MALFORMED = "malformed"  # not a parseable signature line


@dataclass(frozen=True)
class SignatureCheck:
    """The status of one signature line; ``name`` is None for a malformed line."""

    line: str
    name: str | None
    status: SignatureStatus


@dataclass(frozen=True)
class CheckpointReport:
    """Every signature line of a checkpoint note, checked against a trust file."""

    checkpoint: Checkpoint
    checks: tuple[SignatureCheck, ...]
    signers: tuple[str, ...]  # distinct trusted validators with a valid signature, note order
    threshold: int
    validators: tuple[str, ...]  # all validator names of the trust file, file order

    @property
    def committed(self) -> bool:
        """Whether enough distinct trusted validators signed."""
        return len(self.signers) >= self.threshold

    def validator_status(self, name: str) -> SignatureStatus | None:
        """VALID if ``name`` signed validly; INVALID if only invalid lines; else None."""
        if name in self.signers:
            return SignatureStatus.VALID
        if any(c.name == name and c.status is SignatureStatus.INVALID for c in self.checks):
            return SignatureStatus.INVALID
        return None


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A committed checkpoint and the validators whose valid signatures it carries."""

    checkpoint: Checkpoint
    signers: tuple[str, ...]


def inspect_checkpoint(
    note: str | bytes, trust: TrustFile, *, verify: SignatureVerifier = verify_signature
) -> CheckpointReport:
    """Check every signature line of a checkpoint note against ``trust``; no threshold.

    Raises :class:`NoteError` for a malformed note envelope or body and
    :class:`CheckpointOriginError` if the origin is not ``trust.chain_id``.
    Individual signature lines never raise: each gets a :class:`SignatureStatus`.
    ``verify`` checks each Ed25519 signature (default :func:`chain.keys.verify_signature`;
    a replacement must answer exactly as it does, e.g. a cache of successes).
    """
    parsed = parse_note(note, strict=False)
    checkpoint = parse_checkpoint(parsed.text)
    if checkpoint.origin != trust.chain_id:
        raise CheckpointOriginError(
            f"checkpoint origin {checkpoint.origin!r} is not the chain id {trust.chain_id!r}"
        )
    message = parsed.text.encode("utf-8")  # the signed bytes, the same for every line
    signers: list[str] = []
    checks: list[SignatureCheck] = []
    for signature in parsed.signatures:
        line = signature.line.rstrip("\n")
        validator = trust.validator(signature.name)
        # A trusted validator's name was checked by the trust file and its key hash is
        # computed once (Validator.key_hash): matching both is the signed-note key check.
        if validator is None or validator.key_hash != signature.key_hash:
            status = SignatureStatus.UNKNOWN
        elif not verify(validator.public_key, message, signature.signature):
            status = SignatureStatus.INVALID
        elif validator.name in signers:
            status = SignatureStatus.DUPLICATE
        else:
            status = SignatureStatus.VALID
            signers.append(validator.name)
        checks.append(SignatureCheck(line=line, name=signature.name, status=status))
    checks.extend(
        SignatureCheck(line=line, name=None, status=SignatureStatus.MALFORMED)
        for line in parsed.malformed
    )
    return CheckpointReport(
        checkpoint=checkpoint,
        checks=tuple(checks),
        signers=tuple(signers),
        threshold=trust.threshold,
        validators=tuple(v.name for v in trust.validators),
    )


def verify_checkpoint(
    note: str | bytes, trust: TrustFile, *, verify: SignatureVerifier = verify_signature
) -> VerifiedCheckpoint:
    """Verify that a checkpoint note is committed under ``trust`` (``verify``: as for
    :func:`inspect_checkpoint`).

    Counts only valid signatures of distinct validators of the trust file.
    Raises :class:`NoteError` (malformed note or body), :class:`CheckpointOriginError`
    (origin is not the chain id) or :class:`QuorumNotMetError` (too few signers;
    the message says how many valid of how many needed and who signed).
    """
    report = inspect_checkpoint(note, trust, verify=verify)
    if not report.committed:
        signed = ", ".join(report.signers) if report.signers else "none"
        raise QuorumNotMetError(
            f"checkpoint has {len(report.signers)} valid signatures of trusted validators,"
            f" {report.threshold} needed (signed: {signed})",
            valid=len(report.signers),
            needed=report.threshold,
            signers=report.signers,
        )
    return VerifiedCheckpoint(checkpoint=report.checkpoint, signers=report.signers)


__all__ = [
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "ROOT_SIZE",
    "Checkpoint",
    "CheckpointReport",
    "SignatureCheck",
    "SignatureStatus",
    "VerifiedCheckpoint",
    "assemble_checkpoint",
    "checkpoint_signature",
    "inspect_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_checkpoint_signature",
]
