"""Ledger entries: what the notary anchors for a document, as canonical JSON (RFC 8785).

An entry never carries a document's digest, title or any other plaintext metadata: a
document entry holds only a salted commitment to the document's SHA-256, so the public
ledger reveals nothing about the document to someone who does not hold its receipt::

    commitment = SHA-256( b"notary/commit/v1" || salt || document_sha256 )

where ``salt`` is 32 random bytes and ``document_sha256`` the 32 raw digest bytes. The
entry's bytes are the RFC 8785 canonical JSON of ``{"commitment": <64 lowercase hex>,
"type": "document", "v": 1}``; those exact bytes are the Merkle leaf (see docs/receipt-format.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785

COMMIT_DOMAIN = b"notary/commit/v1"
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
        return rfc8785.dumps(
            {"commitment": self.commitment.hex(), "type": "document", "v": ENTRY_VERSION}
        )


def document_entry(salt: bytes, document_sha256: bytes) -> DocumentEntry:
    """The entry anchoring the document whose SHA-256 is ``document_sha256``."""
    return DocumentEntry(commitment(salt, document_sha256))


def parse_document_entry(data: bytes) -> DocumentEntry:
    """Parse entry bytes strictly: known version and type, canonical encoding, no extra fields."""
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EntryError(f"entry is not UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict) or set(obj) != {"commitment", "type", "v"}:
        raise EntryError("entry must hold exactly commitment, type and v")
    if obj["v"] != ENTRY_VERSION or obj["type"] != "document":
        raise EntryError(f"unsupported entry version {obj['v']!r} or type {obj['type']!r}")
    if not isinstance(obj["commitment"], str) or not _HEX64.fullmatch(obj["commitment"]):
        raise EntryError("commitment must be 64 lowercase hex digits")
    entry = DocumentEntry(bytes.fromhex(obj["commitment"]))
    if entry.to_bytes() != data:
        raise EntryError("entry is not in canonical (RFC 8785) form")
    return entry
