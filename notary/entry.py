"""Ledger entries: what the notary anchors for a document, as canonical JSON (RFC 8785).

An entry never carries a document's digest, title or any other plaintext metadata: a
document entry holds only a salted commitment to the document's SHA-256, so the public
ledger reveals nothing about the document to someone who does not hold its receipt::

    commitment = SHA-256( b"notary/commit/v1" || salt || document_sha256 )

where ``salt`` is 32 random bytes and ``document_sha256`` the 32 raw digest bytes. The
entry's bytes are the RFC 8785 canonical JSON of ``{"commitment": <64 lowercase hex>,
"type": "document", "v": 1}``; those exact bytes are the Merkle leaf (see docs/receipt-format.md).

A custody entry anchors one access to a document's content (docs/custody.md). It binds
the private, canonical event record (who read which bytes when, under which case) to
the document's entry without revealing the record::

    commitment = SHA-256( b"notary/custody/v1" || salt || SHA-256(event bytes) )

and its bytes are the canonical JSON of ``{"commitment": <64 hex>, "document": <64 hex
leaf hash of the document's entry>, "type": "custody", "v": 1}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from storage.canonical import canonical_json

COMMIT_DOMAIN = b"notary/commit/v1"
CUSTODY_DOMAIN = b"notary/custody/v1"
ENTRY_VERSION = 1
SALT_BYTES = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")


class EntryError(ValueError):
    """Bytes that are not a well-formed entry of a known version and type."""


def commitment(salt: bytes, document_sha256: bytes) -> bytes:
    """The salted commitment to a document digest. Both arguments are 32 raw bytes."""
    if len(salt) != SALT_BYTES or len(document_sha256) != 32:
        raise EntryError("salt and document digest must be 32 bytes each")
    return hashlib.sha256(COMMIT_DOMAIN + salt + document_sha256).digest()


def commitment_matches(salt: bytes, document_sha256: bytes, expected: bytes) -> bool:
    """True when ``expected`` is the commitment to ``document_sha256`` under ``salt``."""
    return hmac.compare_digest(commitment(salt, document_sha256), expected)


@dataclass(frozen=True)
class DocumentEntry:
    """The anchored entry of one document."""

    commitment: bytes

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) JSON bytes: the Merkle leaf."""
        return canonical_json(
            {"commitment": self.commitment.hex(), "type": "document", "v": ENTRY_VERSION}
        )


def document_entry(salt: bytes, document_sha256: bytes) -> DocumentEntry:
    """The entry anchoring the document whose SHA-256 is ``document_sha256``."""
    return DocumentEntry(commitment(salt, document_sha256))


def _load(data: bytes, members: set[str], entry_type: str) -> dict[str, Any]:
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EntryError(f"entry is not UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict) or set(obj) != members:
        raise EntryError(f"entry must hold exactly {', '.join(sorted(members))}")
    if obj["v"] != ENTRY_VERSION or obj["type"] != entry_type:
        raise EntryError(f"unsupported entry version {obj['v']!r} or type {obj['type']!r}")
    return obj


def _hex32(obj: dict[str, Any], key: str) -> bytes:
    value = obj[key]
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise EntryError(f"{key} must be 64 lowercase hex digits")
    return bytes.fromhex(value)


def parse_document_entry(data: bytes) -> DocumentEntry:
    """Parse entry bytes strictly: known version and type, canonical encoding, no extra fields."""
    obj = _load(data, {"commitment", "type", "v"}, "document")
    entry = DocumentEntry(_hex32(obj, "commitment"))
    if entry.to_bytes() != data:
        raise EntryError("entry is not in canonical (RFC 8785) form")
    return entry


def custody_commitment(salt: bytes, event: bytes) -> bytes:
    """The salted commitment to a custody event's canonical bytes (``salt``: 32 bytes)."""
    if len(salt) != SALT_BYTES:
        raise EntryError("salt must be 32 bytes")
    return hashlib.sha256(CUSTODY_DOMAIN + salt + hashlib.sha256(event).digest()).digest()


@dataclass(frozen=True)
class CustodyEntry:
    """The anchored entry of one access to a document's content."""

    commitment: bytes
    document: bytes  # leaf hash of the document's own entry

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) JSON bytes: the Merkle leaf."""
        return canonical_json(
            {
                "commitment": self.commitment.hex(),
                "document": self.document.hex(),
                "type": "custody",
                "v": ENTRY_VERSION,
            }
        )


def custody_entry(salt: bytes, event: bytes, document_entry_hash: bytes) -> CustodyEntry:
    """The entry anchoring the custody ``event`` (its canonical bytes) of a document
    whose entry has leaf hash ``document_entry_hash`` (32 bytes)."""
    if len(document_entry_hash) != 32:
        raise EntryError("document entry hash must be 32 bytes")
    return CustodyEntry(custody_commitment(salt, event), document_entry_hash)


def parse_custody_entry(data: bytes) -> CustodyEntry:
    """Parse custody entry bytes as strictly as parse_document_entry."""
    obj = _load(data, {"commitment", "document", "type", "v"}, "custody")
    entry = CustodyEntry(_hex32(obj, "commitment"), _hex32(obj, "document"))
    if entry.to_bytes() != data:
        raise EntryError("entry is not in canonical (RFC 8785) form")
    return entry
