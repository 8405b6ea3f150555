"""Receipts: everything a court needs to verify a document's anchoring offline.

A receipt is a JSON object (``docs/receipt-format.md`` is the specification)::

    {
      "format": "notary-receipt", "version": 1,
      "chain_id": "<origin of the checkpoint>",
      "document": {"sha256": "<64 hex>", "size": <int>},
      "salt": "<64 hex>",
      "entry": "<the entry's exact bytes, as a UTF-8 string>",
      "leaf_index": <int>, "tree_size": <int>,
      "inclusion_proof": ["<base64 of 32 bytes>", ...],
      "checkpoint": "<the signed checkpoint note>"
    }

It carries nothing secret beyond the salt, which only the receipt holder learns.
Parsing is strict: unknown members, wrong types and out-of-range values are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

RECEIPT_FORMAT = "notary-receipt"
RECEIPT_VERSION = 1
MAX_RECEIPT_BYTES = 64 * 1024
MAX_PROOF_HASHES = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MEMBERS = {
    "format",
    "version",
    "chain_id",
    "document",
    "salt",
    "entry",
    "leaf_index",
    "tree_size",
    "inclusion_proof",
    "checkpoint",
}


class ReceiptFormatError(ValueError):
    """Receipt bytes that are not a well-formed receipt of a known version."""


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt; see the module docstring for the wire format."""

    chain_id: str
    document_sha256: bytes
    document_size: int
    salt: bytes
    entry: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON-ready dict."""
        return {
            "format": RECEIPT_FORMAT,
            "version": RECEIPT_VERSION,
            "chain_id": self.chain_id,
            "document": {"sha256": self.document_sha256.hex(), "size": self.document_size},
            "salt": self.salt.hex(),
            "entry": self.entry.decode("utf-8"),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }

    def dumps(self) -> str:
        """The receipt as indented JSON text, ending in a newline."""
        return json.dumps(self.to_json(), indent=1) + "\n"


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ReceiptFormatError(message)


def _hex32(obj: dict[str, Any], key: str, where: str) -> bytes:
    value = obj.get(key)
    _require(
        isinstance(value, str) and _HEX64.fullmatch(value) is not None,
        f"{where}{key} must be 64 lowercase hex digits",
    )
    return bytes.fromhex(value)  # type: ignore[arg-type]


def _uint(obj: dict[str, Any], key: str, where: str = "") -> int:
    value = obj.get(key)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63,
        f"{where}{key} must be a non-negative integer",
    )
    return value  # type: ignore[return-value]


def _proof(value: object) -> tuple[bytes, ...]:
    _require(
        isinstance(value, list) and len(value) <= MAX_PROOF_HASHES,
        f"inclusion_proof must be a list of at most {MAX_PROOF_HASHES} hashes",
    )
    out = []
    items: list[object] = value  # type: ignore[assignment]
    for i, item in enumerate(items):
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            raw = b""
        _require(len(raw) == 32, f"inclusion_proof[{i}] must be base64 of 32 bytes")
        out.append(raw)
    return tuple(out)


def parse_receipt(data: bytes | str) -> Receipt:
    """Parse receipt JSON strictly; raise ReceiptFormatError naming the bad member."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    _require(len(raw) <= MAX_RECEIPT_BYTES, f"receipt larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReceiptFormatError(f"receipt is not UTF-8 JSON: {e}") from None
    _require(isinstance(obj, dict), "receipt must be a JSON object")
    _require(obj.get("format") == RECEIPT_FORMAT, f"format must be {RECEIPT_FORMAT!r}")
    _require(
        obj.get("version") == RECEIPT_VERSION, f"unsupported receipt version {obj.get('version')!r}"
    )
    unknown = set(obj) - _MEMBERS
    _require(not unknown, f"unknown receipt members: {', '.join(sorted(unknown))}")
    missing = _MEMBERS - set(obj)
    _require(not missing, f"missing receipt members: {', '.join(sorted(missing))}")
    doc = obj["document"]
    _require(
        isinstance(doc, dict) and set(doc) == {"sha256", "size"},
        "document must hold exactly sha256 and size",
    )
    for key in ("chain_id", "entry", "checkpoint"):
        _require(isinstance(obj[key], str) and obj[key], f"{key} must be a non-empty string")
    leaf_index, tree_size = _uint(obj, "leaf_index"), _uint(obj, "tree_size")
    _require(leaf_index < tree_size, "leaf_index must be below tree_size")
    return Receipt(
        chain_id=obj["chain_id"],
        document_sha256=_hex32(doc, "sha256", "document."),
        document_size=_uint(doc, "size", "document."),
        salt=_hex32(obj, "salt", ""),
        entry=obj["entry"].encode("utf-8"),
        leaf_index=leaf_index,
        tree_size=tree_size,
        inclusion_proof=_proof(obj["inclusion_proof"]),
        checkpoint=obj["checkpoint"],
    )
