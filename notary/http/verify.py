"""POST /v1/verify: a document (or its SHA-256) and a receipt -> the verdict. Public.

Two request forms:

- ``multipart/form-data`` with a ``receipt`` part (the receipt JSON) and either a
  ``file`` part (streamed and hashed, never buffered whole) or a ``sha256`` field;
- ``application/json``: ``{"sha256": "<64 hex>", "receipt": <receipt object or its
  JSON text>}``, optionally ``"size"`` (the document's length in bytes).

The answer is ``notary.verify.verify_receipt`` against the service's trust file, with
every check: ``{"valid": bool, "document": {"sha256", "size"}, "checks": [{"name",
"outcome", "detail"}, ...]}``, 200 whether or not the receipt is valid. Bytes that are
not a receipt at all are a 422 problem (``malformed_receipt``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import BodyPartReader, web

from chain.trust import TrustFile
from notary import errors
from notary.http.documents import CHUNK, SERVICE
from notary.http.json_body import json_object
from notary.receipt import MAX_RECEIPT_BYTES, Receipt, ReceiptFormatError, parse_receipt
from notary.verify import DocumentDigest, Verdict, verify_receipt

TRUST = web.AppKey("trust", TrustFile)
_PARTS = ("file", "sha256", "receipt")


def _digest_from_hex(text: str) -> DocumentDigest:
    try:
        return DocumentDigest.from_hex(text)
    except ValueError:
        raise errors.InvalidRequestError("sha256 must be 64 hex digits", field="sha256") from None


def _receipt(raw: bytes) -> Receipt:
    try:
        return parse_receipt(raw)
    except ReceiptFormatError as e:
        raise errors.MalformedReceiptError(f"not a receipt: {e}") from None


async def _hash_part(part: BodyPartReader, limit: int) -> DocumentDigest:
    h, size = hashlib.sha256(), 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLargeError(
                f"the file exceeds the limit of {limit} bytes", limit=limit
            )
        h.update(chunk)
    return DocumentDigest(h.digest(), size)


async def _read_small(part: BodyPartReader, limit: int, name: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > limit:
            if name == "receipt":
                raise errors.MalformedReceiptError(f"a receipt is at most {limit} bytes")
            raise errors.InvalidRequestError(f"{name} is too long", field=name)
    return bytes(data)


async def _from_multipart(request: web.Request, limit: int) -> tuple[DocumentDigest, bytes]:
    reader = await request.multipart()
    seen: dict[str, Any] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise errors.BadRequestError("nested multipart bodies are not supported")
        name = part.name or ""
        if name not in _PARTS:
            raise errors.InvalidRequestError(f"unknown form field {name!r}", field=name)
        if name in seen:
            raise errors.InvalidRequestError(f"form field {name!r} given twice", field=name)
        if name == "file":
            seen[name] = await _hash_part(part, limit)
        elif name == "sha256":
            text = (await _read_small(part, 256, name)).decode("utf-8", "replace")
            seen[name] = _digest_from_hex(text)
        else:
            seen[name] = await _read_small(part, MAX_RECEIPT_BYTES, name)
    return _pick(seen.get("file"), seen.get("sha256")), _need_receipt(seen.get("receipt"))


def _pick(file: DocumentDigest | None, sha256: DocumentDigest | None) -> DocumentDigest:
    if (file is None) == (sha256 is None):
        raise errors.InvalidRequestError("give either a file or its sha256 (not both)")
    digest = file or sha256
    assert digest is not None
    return digest


def _need_receipt(raw: bytes | None) -> bytes:
    if raw is None:
        raise errors.InvalidRequestError("a receipt is required", field="receipt")
    return raw


async def _from_json(request: web.Request) -> tuple[DocumentDigest, bytes]:
    body = await json_object(request, limit=MAX_RECEIPT_BYTES + 4096)
    unknown = set(body) - {"sha256", "size", "receipt"}
    if unknown:
        raise errors.InvalidRequestError(f"unknown members: {', '.join(sorted(unknown))}")
    sha256 = body.get("sha256")
    if not isinstance(sha256, str):
        raise errors.InvalidRequestError("sha256 must be a string", field="sha256")
    digest = _digest_from_hex(sha256)
    size = body.get("size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise errors.InvalidRequestError("size must be a non-negative integer", field="size")
        digest = DocumentDigest(digest.sha256, size)
    receipt = body.get("receipt")
    if isinstance(receipt, dict):
        raw = json.dumps(receipt).encode("utf-8")
    elif isinstance(receipt, str):
        raw = receipt.encode("utf-8")
    elif receipt is None:
        raise errors.InvalidRequestError("a receipt is required", field="receipt")
    else:
        raise errors.MalformedReceiptError("not a receipt: must be a JSON object")
    return digest, raw


def verdict_json(document: DocumentDigest, verdict: Verdict) -> dict[str, Any]:
    """The verdict as the API and ``notary verify --json`` print it."""
    return {
        "valid": verdict.valid,
        "document": {"sha256": document.sha256.hex(), "size": document.size},
        "checks": [
            {"name": c.name, "outcome": c.outcome.value, "detail": c.detail} for c in verdict.checks
        ],
    }


async def verify(request: web.Request) -> web.Response:
    """POST /v1/verify: the verdict on a receipt for a document, with every check."""
    limit = request.app[SERVICE].max_upload_bytes
    if request.content_type == "multipart/form-data":
        document, raw = await _from_multipart(request, limit)
    elif request.content_type == "application/json":
        document, raw = await _from_json(request)
    else:
        raise errors.UnsupportedMediaTypeError(
            "send multipart/form-data (file or sha256, receipt) or application/json"
        )
    verdict = verify_receipt(document, _receipt(raw), request.app[TRUST])
    return web.json_response(verdict_json(document, verdict))


def verify_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [web.post("/v1/verify", verify)]
