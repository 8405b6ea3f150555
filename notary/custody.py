"""Chain of custody: the record of one access to a document's content, and its proof.

Every content read writes a custody *event*: canonical JSON (RFC 8785) naming the
document (id, SHA-256, leaf hash of its entry), the actor (name, org, role), the action,
the case reference a court read under, the byte range served and the time. The event
stays in the index; the ledger gets only a custody entry (notary.entry) with a salted
commitment to it. Once the entry is committed, the service hands out a *custody proof*:
the event, the salt, the entry, its inclusion proof and a signed checkpoint, which
anyone verifies offline with :func:`verify_custody_proof` (docs/custody.md).

Pure functions and frozen dataclasses only: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chain.checkpoint import verify_checkpoint
from chain.errors import ChainError, ProofError
from chain.merkle import leaf_hash, verify_inclusion
from chain.trust import TrustFile
from notary.entry import EntryError, custody_commitment, parse_custody_entry
from storage.canonical import canonical_json

EVENT_TYPE = "custody_event"
EVENT_VERSION = 1
PROOF_FORMAT = "notary-custody-proof"
PROOF_VERSION = 1
ACTIONS = ("read",)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_EVENT_MEMBERS = {"action", "actor", "at", "case_ref", "document", "range", "type", "v"}
_PROOF_MEMBERS = {
    "format",
    "version",
    "chain_id",
    "event",
    "salt",
    "entry",
    "leaf_index",
    "tree_size",
    "inclusion_proof",
    "checkpoint",
}


class CustodyFormatError(ValueError):
    """Bytes that are not a well-formed custody event or custody proof."""


class CustodyProofError(Exception):
    """A custody proof that does not verify; ``check`` names the failed check."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


def format_time(t: datetime) -> str:
    """UTC, microseconds, ``Z``: the one time format of custody events."""
    if t.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CustodyEvent:
    """One access: who read bytes ``[start, end)`` of which document, when, under which case."""

    document_id: str
    document_sha256: str  # 64 lowercase hex
    document_entry_hash: str  # 64 lowercase hex: leaf hash of the document's entry
    actor_name: str
    actor_org: str
    actor_role: str
    action: str
    case_ref: str | None
    start: int
    end: int
    at: str  # format_time()

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (the members of docs/custody.md)."""
        return {
            "action": self.action,
            "actor": {"name": self.actor_name, "org": self.actor_org, "role": self.actor_role},
            "at": self.at,
            "case_ref": self.case_ref,
            "document": {
                "entry_hash": self.document_entry_hash,
                "id": self.document_id,
                "sha256": self.document_sha256,
            },
            "range": {"end": self.end, "start": self.start},
            "type": EVENT_TYPE,
            "v": EVENT_VERSION,
        }

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) bytes the custody entry commits to."""
        return canonical_json(self.to_json())


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise CustodyFormatError(message)


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    _require(isinstance(value, str) and 0 < len(value) <= 255, f"{where}{key} must be a string")
    return value  # type: ignore[return-value]


def _uint(obj: dict[str, Any], key: str, where: str = "") -> int:
    value = obj.get(key)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63,
        f"{where}{key} must be a non-negative integer",
    )
    return value  # type: ignore[return-value]


def _hex(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    _require(
        isinstance(value, str) and _HEX64.fullmatch(value) is not None,
        f"{where}{key} must be 64 lowercase hex digits",
    )
    return value  # type: ignore[return-value]


def _object(obj: dict[str, Any], key: str, members: set[str]) -> dict[str, Any]:
    value = obj.get(key)
    _require(
        isinstance(value, dict) and set(value) == members,
        f"{key} must hold exactly {', '.join(sorted(members))}",
    )
    return value  # type: ignore[return-value]


def parse_event(data: bytes) -> CustodyEvent:
    """Parse event bytes strictly: known version, every member, canonical encoding."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CustodyFormatError(f"event is not UTF-8 JSON: {e}") from None
    _require(isinstance(obj, dict) and set(obj) == _EVENT_MEMBERS, "event members are wrong")
    _require(obj["type"] == EVENT_TYPE and obj["v"] == EVENT_VERSION, "unsupported event type")
    _require(obj["action"] in ACTIONS, f"unknown action {obj['action']!r}")
    actor = _object(obj, "actor", {"name", "org", "role"})
    doc = _object(obj, "document", {"entry_hash", "id", "sha256"})
    rng = _object(obj, "range", {"end", "start"})
    _require(isinstance(obj["at"], str) and _TIME.fullmatch(obj["at"]) is not None, "bad at")
    case_ref = obj["case_ref"]
    _require(case_ref is None or isinstance(case_ref, str), "case_ref must be a string or null")
    event = CustodyEvent(
        document_id=_string(doc, "id", "document."),
        document_sha256=_hex(doc, "sha256", "document."),
        document_entry_hash=_hex(doc, "entry_hash", "document."),
        actor_name=_string(actor, "name", "actor."),
        actor_org=_string(actor, "org", "actor."),
        actor_role=_string(actor, "role", "actor."),
        action=obj["action"],
        case_ref=case_ref,
        start=_uint(rng, "start", "range."),
        end=_uint(rng, "end", "range."),
        at=obj["at"],
    )
    _require(event.start <= event.end, "range.start must not exceed range.end")
    _require(event.to_bytes() == data, "event is not in canonical (RFC 8785) form")
    return event


@dataclass(frozen=True)
class CustodyProof:
    """An anchored custody event with what offline verification needs."""

    chain_id: str
    event: bytes
    salt: bytes
    entry: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """The proof as a JSON-ready dict (docs/custody.md)."""
        return {
            "format": PROOF_FORMAT,
            "version": PROOF_VERSION,
            "chain_id": self.chain_id,
            "event": self.event.decode("utf-8"),
            "salt": self.salt.hex(),
            "entry": self.entry.decode("utf-8"),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }


def parse_proof(obj: object) -> CustodyProof:
    """Parse a custody proof's JSON object strictly; CustodyFormatError names the member."""
    _require(isinstance(obj, dict), "a custody proof is a JSON object")
    assert isinstance(obj, dict)
    _require(set(obj) == _PROOF_MEMBERS, "custody proof members are wrong")
    _require(
        obj["format"] == PROOF_FORMAT and obj["version"] == PROOF_VERSION,
        f"format must be {PROOF_FORMAT!r} version {PROOF_VERSION}",
    )
    for key in ("chain_id", "event", "entry", "checkpoint"):
        _require(isinstance(obj[key], str) and obj[key], f"{key} must be a non-empty string")
    hashes = obj["inclusion_proof"]
    _require(isinstance(hashes, list) and len(hashes) <= 64, "inclusion_proof must be a list")
    proof = []
    for item in hashes:
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            raw = b""
        _require(len(raw) == 32, "inclusion_proof items must be base64 of 32 bytes")
        proof.append(raw)
    leaf_index, tree_size = _uint(obj, "leaf_index"), _uint(obj, "tree_size")
    _require(leaf_index < tree_size, "leaf_index must be below tree_size")
    return CustodyProof(
        chain_id=obj["chain_id"],
        event=obj["event"].encode("utf-8"),
        salt=bytes.fromhex(_hex(obj, "salt", "")),
        entry=obj["entry"].encode("utf-8"),
        leaf_index=leaf_index,
        tree_size=tree_size,
        inclusion_proof=tuple(proof),
        checkpoint=obj["checkpoint"],
    )


def verify_custody_proof(
    proof: CustodyProof, trust: TrustFile, *, document_entry_hash: bytes | None = None
) -> CustodyEvent:
    """Verify a custody proof offline under ``trust``; return the proven event.

    With ``document_entry_hash`` (the leaf hash of a document's entry, e.g. from its
    receipt), also check that the event is about that document. Raises
    CustodyProofError naming the first failed check.
    """
    # (1): the chain is the trusted one
    if proof.chain_id != trust.chain_id:
        raise CustodyProofError(
            "chain_id", f"proof of {proof.chain_id!r}, trust {trust.chain_id!r}"
        )
    # (2): the event and the entry are well formed
    try:
        event = parse_event(proof.event)
    except CustodyFormatError as e:
        raise CustodyProofError("event", str(e)) from None
    try:
        entry = parse_custody_entry(proof.entry)
    except EntryError as e:
        raise CustodyProofError("entry", str(e)) from None
    # (3): the entry commits to exactly this event under the salt
    try:
        expected = custody_commitment(proof.salt, proof.event)
    except EntryError as e:
        raise CustodyProofError("commitment", str(e)) from None
    if not hmac.compare_digest(expected, entry.commitment):
        raise CustodyProofError("commitment", "the entry does not commit to this event")
    # (4): event and entry name the same document (and the one the caller has in mind)
    if entry.document.hex() != event.document_entry_hash:
        raise CustodyProofError("document", "the entry and the event name different documents")
    if document_entry_hash is not None and entry.document != document_entry_hash:
        raise CustodyProofError("document", "the event is about another document")
    # (5): enough trusted validators signed the checkpoint of this tree size
    try:
        verified = verify_checkpoint(proof.checkpoint, trust)
    except ChainError as e:
        raise CustodyProofError("checkpoint", str(e)) from None
    if verified.checkpoint.size != proof.tree_size:
        raise CustodyProofError(
            "checkpoint",
            f"checkpoint of size {verified.checkpoint.size}, proof says {proof.tree_size}",
        )
    # (6): the entry is in the log the checkpoint commits to
    try:
        verify_inclusion(
            proof.leaf_index,
            proof.tree_size,
            leaf_hash(proof.entry),
            proof.inclusion_proof,
            verified.checkpoint.root,
        )
    except ProofError as e:
        raise CustodyProofError("inclusion", str(e)) from None
    return event
