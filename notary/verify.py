"""Offline verification of a receipt: pure, no network, no database.

``verify_receipt(document, receipt, trust)`` checks, in order, and lists every check
in the returned :class:`Verdict`:

1. the receipt is well formed (``receipt``);
2. it is for the chain the trust file names (``chain_id``);
3. the document's SHA-256 (and size, when known) is the one in the receipt (``document``);
4. the entry is a well-formed document entry, or log segment entry (``entry``);
5. the entry's commitment is SHA-256("notary/commit/v1" || salt || digest) (``commitment``);
6. the checkpoint note is well formed, of this chain, at the receipt's tree size
   (``checkpoint``); each validator's signature is reported (``signature:<name>``);
7. at least ``threshold`` distinct trusted validators signed it (``threshold``);
8. the inclusion proof leads from the entry's leaf hash to the checkpoint's root
   (``inclusion``).

A check that cannot run because an earlier one failed is reported as skipped. The
verdict is valid only when no check failed or was skipped. ``Verdict.raise_for_failure``
turns the first failure into a :class:`VerificationError`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chain.checkpoint import CheckpointReport, SignatureStatus, inspect_checkpoint
from chain.errors import ChainError, ProofError
from chain.merkle import leaf_hash, verify_inclusion
from chain.trust import TrustFile
from notary.entry import EntryError, commitment, parse_document_entry
from notary.log_entry import parse_log_segment_entry
from notary.receipt import Receipt, ReceiptFormatError, parse_receipt

_CHUNK = 1024 * 1024


class VerificationError(Exception):
    """A receipt that does not verify; ``check`` names the first failed check."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


class Outcome(enum.Enum):
    PASS = "pass"  # noqa: S105 (an outcome, not a password)
    FAIL = "fail"
    SKIPPED = "skipped"
    INFO = "info"  # reported, does not decide the verdict (e.g. one validator's signature)


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class Verdict:
    """Every check made, in order; valid when none failed or was skipped."""

    checks: tuple[Check, ...]

    @property
    def valid(self) -> bool:
        return all(c.outcome in (Outcome.PASS, Outcome.INFO) for c in self.checks)

    def failures(self) -> tuple[Check, ...]:
        """The checks that failed, in order."""
        return tuple(c for c in self.checks if c.outcome is Outcome.FAIL)

    def raise_for_failure(self) -> None:
        """Raise VerificationError for the first failed (or skipped) check, if any."""
        for c in self.checks:
            if c.outcome in (Outcome.FAIL, Outcome.SKIPPED):
                raise VerificationError(c.name, c.detail)


@dataclass(frozen=True)
class DocumentDigest:
    """What verification needs of the document: its SHA-256 and, when known, its size."""

    sha256: bytes
    size: int | None = None

    @classmethod
    def from_hex(cls, hex_digest: str) -> DocumentDigest:
        """From 64 hex digits; raises ValueError otherwise."""
        raw = bytes.fromhex(hex_digest.strip())
        if len(raw) != 32:
            raise ValueError("a SHA-256 digest is 64 hex digits")
        return cls(raw)

    @classmethod
    def of_stream(cls, stream: BinaryIO) -> DocumentDigest:
        """Hash a binary stream to its end, in bounded memory."""
        h, size = hashlib.sha256(), 0
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
        return cls(h.digest(), size)

    @classmethod
    def of_file(cls, path: Path) -> DocumentDigest:
        """Hash the file at ``path``."""
        with path.open("rb") as f:
            return cls.of_stream(f)


class _Checks:
    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.items.append(Check(name, Outcome.PASS if ok else Outcome.FAIL, detail))
        return ok

    def info(self, name: str, detail: str) -> None:
        self.items.append(Check(name, Outcome.INFO, detail))

    def skip(self, *names: str) -> None:
        for name in names:
            self.items.append(Check(name, Outcome.SKIPPED, "not checked: an earlier check failed"))

    def verdict(self) -> Verdict:
        return Verdict(tuple(self.items))


def verify_receipt(
    document: DocumentDigest, receipt: Receipt | bytes | str, trust: TrustFile
) -> Verdict:
    """Verify ``receipt`` for the document with digest ``document`` under ``trust``.

    Never raises for bad input: every problem is a failed check in the verdict.
    """
    checks = _Checks()
    # (1): the receipt is well formed
    parsed = _parse(receipt, checks)
    if parsed is None:
        checks.skip("chain_id", "document", "entry", "commitment", "checkpoint")
        checks.skip("threshold", "inclusion")
        return checks.verdict()
    # (2): it is a receipt of the trusted chain
    checks.add(
        "chain_id",
        parsed.chain_id == trust.chain_id,
        f"receipt chain {parsed.chain_id!r}, trust file chain {trust.chain_id!r}",
    )
    # (3): the document is the one the receipt is for
    _check_document(document, parsed, checks)
    # (4) and (5): the entry commits to the document under the salt
    _check_entry(parsed, checks)
    # (6) and (7): the checkpoint is committed by enough trusted validators
    report = _check_checkpoint(parsed, trust, checks)
    # (8): the entry is in the log the checkpoint commits to
    if report is None:
        checks.skip("inclusion")
    else:
        _check_inclusion(parsed, report, checks)
    return checks.verdict()


def verify_file(path: Path, receipt: Receipt | bytes | str, trust: TrustFile) -> Verdict:
    """Hash the file at ``path`` and verify ``receipt`` for it."""
    return verify_receipt(DocumentDigest.of_file(path), receipt, trust)


def _parse(receipt: Receipt | bytes | str, checks: _Checks) -> Receipt | None:
    if isinstance(receipt, Receipt):
        checks.add("receipt", True, "well formed")
        return receipt
    try:
        parsed = parse_receipt(receipt)
    except ReceiptFormatError as e:
        checks.add("receipt", False, str(e))
        return None
    checks.add("receipt", True, "well formed, format notary-receipt version 1")
    return parsed


def _check_document(document: DocumentDigest, receipt: Receipt, checks: _Checks) -> None:
    same = hmac.compare_digest(document.sha256, receipt.document_sha256)
    detail = f"SHA-256 {document.sha256.hex()}" + (
        " matches the receipt" if same else f", receipt says {receipt.document_sha256.hex()}"
    )
    if same and document.size is not None and document.size != receipt.document_size:
        same, detail = False, f"size {document.size} bytes, receipt says {receipt.document_size}"
    checks.add("document", same, detail)


def _parse_entry(data: bytes) -> tuple[str, bytes]:
    """What the entry is, and the commitment it holds: a document entry, or the entry of
    one segment of a broker log stream (docs/log-streams.md). Raises EntryError."""
    try:
        return "document entry", parse_document_entry(data).commitment
    except EntryError as as_document:
        try:
            segment = parse_log_segment_entry(data)
        except EntryError:
            raise as_document from None
        what = f"log segment entry (stream {segment.stream}, seq {segment.seq})"
        return what, segment.commitment


def _check_entry(receipt: Receipt, checks: _Checks) -> None:
    try:
        what, held = _parse_entry(receipt.entry)
    except EntryError as e:
        checks.add("entry", False, str(e))
        checks.skip("commitment")
        return
    checks.add("entry", True, f"{what}, leaf hash {leaf_hash(receipt.entry).hex()}")
    expected = commitment(receipt.salt, receipt.document_sha256)
    checks.add(
        "commitment",
        hmac.compare_digest(expected, held),
        f"SHA-256(domain || salt || digest) = {expected.hex()}"
        + ("" if expected == held else f", entry holds {held.hex()}"),
    )


def _check_checkpoint(
    receipt: Receipt, trust: TrustFile, checks: _Checks
) -> CheckpointReport | None:
    try:
        report = inspect_checkpoint(receipt.checkpoint, trust)
    except ChainError as e:
        checks.add("checkpoint", False, str(e))
        checks.skip("threshold")
        return None
    cp = report.checkpoint
    if not checks.add(
        "checkpoint",
        cp.size == receipt.tree_size,
        f"origin {cp.origin!r}, tree size {cp.size}"
        + ("" if cp.size == receipt.tree_size else f", receipt says {receipt.tree_size}"),
    ):
        checks.skip("threshold")
        return None
    _report_signatures(report, checks.info)
    ok = checks.add(
        "threshold",
        report.committed,
        f"{len(report.signers)} valid signatures of distinct trusted validators, "
        f"{report.threshold} needed",
    )
    return report if ok else None


def _report_signatures(report: CheckpointReport, info: Callable[[str, str], None]) -> None:
    for name in report.validators:
        status = report.validator_status(name)
        detail = {
            SignatureStatus.VALID: "valid signature",
            SignatureStatus.INVALID: "signature does not verify: not counted",
            None: "no signature",
        }[status]
        info(f"signature:{name}", detail)
    ignored = [c for c in report.checks if c.status is not SignatureStatus.VALID]
    for c in ignored:
        if c.status is not SignatureStatus.INVALID:
            info("signature:ignored", f"{c.status.value} line ignored: {c.line[:80]}")


def _check_inclusion(receipt: Receipt, report: CheckpointReport, checks: _Checks) -> None:
    try:
        verify_inclusion(
            receipt.leaf_index,
            receipt.tree_size,
            leaf_hash(receipt.entry),
            receipt.inclusion_proof,
            report.checkpoint.root,
        )
    except ProofError as e:
        checks.add("inclusion", False, str(e))
        return
    checks.add(
        "inclusion",
        True,
        f"leaf {receipt.leaf_index} of {receipt.tree_size} leads to the checkpoint root",
    )
