"""Document routes: upload, metadata, versions, content."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from notary import errors
from notary.metadata import DOC_ID, FIELDS, UploadMetadata, parse_metadata
from notary.sealed_io import plaintext_size
from notary.service import NotaryService, Principal
from storage import StorageError

SERVICE = web.AppKey("service", NotaryService)
PRINCIPAL = web.RequestKey("principal", Principal)
CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def principal(request: web.Request) -> Principal:
    """The authenticated caller, set by the authentication middleware."""
    try:
        return request[PRINCIPAL]
    except KeyError:
        raise errors.NotaryError("no principal on the request") from None


def _doc_id(request: web.Request) -> str:
    doc_id = request.match_info["doc_id"]
    if not DOC_ID.fullmatch(doc_id):
        raise errors.DocumentNotFoundError(f"no document {doc_id!r}")
    return doc_id


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def _raw_body(request: web.Request) -> AsyncIterator[bytes]:
    while chunk := await request.content.read(CHUNK):
        yield chunk


async def _part_body(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


def _check_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLargeError(
            f"the document ({request.content_length} bytes) exceeds the limit of {limit} bytes",
            limit=limit,
        )


async def _multipart(
    request: web.Request, fields: dict[str, str]
) -> tuple[UploadMetadata, AsyncIterator[bytes], BodyPartReader]:
    """Metadata fields first, then the ``file`` part, which is streamed (never buffered)."""
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise errors.InvalidMetadataError("multipart upload without a 'file' part")
        if not isinstance(part, BodyPartReader):
            raise errors.BadRequestError("nested multipart bodies are not supported")
        if part.name == "file":
            if part.filename and "filename" not in fields:
                fields["filename"] = part.filename.rsplit("/", 1)[-1]
            ctype = part.headers.get("Content-Type")
            if ctype and "media_type" not in fields and ctype != "application/octet-stream":
                fields["media_type"] = ctype.split(";")[0]
            return parse_metadata(fields), _part_body(part), part
        if part.name not in FIELDS:
            raise errors.InvalidMetadataError(f"unknown form field {part.name!r}")
        value = await part.read(decode=True)
        if len(value) > 4096:
            raise errors.InvalidMetadataError(f"form field {part.name!r} is too long")
        try:
            fields[part.name] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidMetadataError(f"form field {part.name!r} is not UTF-8") from None


async def upload(request: web.Request) -> web.Response:
    """POST /v1/documents: a raw body with metadata in the query, or multipart/form-data."""
    service = request.app[SERVICE]
    _check_length(request, service.max_upload_bytes)
    query = {k: v for k, v in request.query.items() if k not in ("wait", "timeout")}
    wait = _truthy(request.query.get("wait"))
    if request.content_type == "multipart/form-data":
        meta, body, _ = await _multipart(request, query)
    else:
        # curl's --data-binary says form-urlencoded unless told otherwise: not a document type.
        generic = ("", "application/octet-stream", "application/x-www-form-urlencoded")
        if request.content_type not in generic:
            query.setdefault("media_type", request.content_type)
        meta, body = parse_metadata(query), _raw_body(request)
    who = principal(request)
    if wait:
        timeout = _timeout(request.query.get("timeout"))
        doc, receipt = await service.upload_anchored(who, meta, body, timeout)
        return web.json_response(
            {"document": doc.to_json(), "receipt": receipt.to_json()},
            status=201,
            headers={"Location": f"/v1/documents/{doc.id}"},
        )
    doc = await service.upload(who, meta, body)
    location = f"/v1/documents/{doc.id}"
    return web.json_response(doc.to_json(), status=202, headers={"Location": location})


def _timeout(text: str | None) -> float:
    if text is None:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        raise errors.BadRequestError("timeout must be a number of seconds") from None
    if not 0 < value <= 600:
        raise errors.BadRequestError("timeout must be in (0, 600] seconds")
    return value


async def get_document(request: web.Request) -> web.Response:
    """GET /v1/documents/{id}: metadata and status."""
    doc = await request.app[SERVICE].get(principal(request), _doc_id(request))
    return web.json_response(doc.to_json())


async def get_versions(request: web.Request) -> web.Response:
    """GET /v1/documents/{id}/versions: the version chain, oldest first."""
    docs = await request.app[SERVICE].versions(principal(request), _doc_id(request))
    return web.json_response({"versions": [d.to_json() for d in docs]})


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` a single-range ``Range`` header asks for, or None
    to send the whole document. Raises RangeNotSatisfiableError outside the document."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # multiple or malformed ranges: RFC 9110 lets us send it all
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
        if last != "" and int(last) < start:
            return None
    if start >= size or start >= end:
        raise errors.RangeNotSatisfiableError(
            f"range {header!r} is outside the document of {size} bytes", size=size
        )
    return start, end


async def get_content(request: web.Request) -> web.StreamResponse:
    """GET /v1/documents/{id}/content: the original bytes, rebuilt and verified."""
    service = request.app[SERVICE]
    who, case_ref = principal(request), request.query.get("case")
    doc, manifest = await service.manifest(who, _doc_id(request), case_ref)
    # Sizes, ranges and digests are of the plaintext; a sealed document is opened on
    # the way out, record by record, each authenticated before it is sent.
    size = plaintext_size(manifest)
    digest = doc.sha256 or manifest.sha256
    wanted = parse_range(request.headers.get("Range"), size)
    start, end = wanted if wanted is not None else (0, size)
    chunks = service.sealing.read(service.store, manifest, start, end).__aiter__()
    # Rebuild the first segment before answering, so an unreadable document is a 503
    # problem rather than a response cut short.
    try:
        first = await anext(chunks, b"")
    except StorageError as e:
        raise errors.StorageUnavailableError(f"document {doc.id} cannot be read: {e}") from None
    # No byte leaves before the access is on record (chain of custody, docs/custody.md).
    await service.record_access(who, doc.id, start, end, case_ref)
    headers: dict[str, Any] = {
        "Content-Type": doc.media_type or "application/octet-stream",
        "Content-Length": str(end - start),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:",
    }
    if doc.filename:
        headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(doc.filename, safe='')}"
        )
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    if first:
        await response.write(first)
    async for chunk in chunks:
        # A failure from here on cuts the connection: the client sees a short body,
        # never wrong bytes.
        await response.write(chunk)
    await response.write_eof()
    return response


def _int_param(request: web.Request, name: str, required: bool = True) -> int | None:
    text = request.query.get(name)
    if text is None:
        if required:
            raise errors.BadRequestError(f"query parameter {name!r} is required")
        return None
    if not text.isdigit() or len(text) > 19:
        raise errors.BadRequestError(f"{name} must be a non-negative integer")
    return int(text)


async def get_receipt(request: web.Request) -> web.Response:
    """GET /v1/documents/{id}/receipt[?tree_size=N]: the receipt (docs/receipt-format.md)."""
    tree_size = _int_param(request, "tree_size", required=False)
    receipt = await request.app[SERVICE].receipt(principal(request), _doc_id(request), tree_size)
    return web.json_response(receipt.to_json())


async def latest_checkpoint(request: web.Request) -> web.Response:
    """GET /v1/checkpoints/latest: the newest committed checkpoint, as a signed note."""
    note = await request.app[SERVICE].latest_checkpoint()
    return web.Response(text=note, content_type="text/plain", charset="utf-8")


async def consistency_proof(request: web.Request) -> web.Response:
    """GET /v1/proofs/consistency?from=&to=: RFC 9162 consistency proof (base64 hashes)."""
    old, new = _int_param(request, "from"), _int_param(request, "to")
    assert old is not None and new is not None
    hashes = await request.app[SERVICE].consistency(old, new)
    return web.json_response(
        {"from": old, "to": new, "hashes": [base64.b64encode(h).decode() for h in hashes]}
    )


def document_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.post("/v1/documents", upload),
        web.get("/v1/documents/{doc_id}", get_document),
        web.get("/v1/documents/{doc_id}/versions", get_versions),
        web.get("/v1/documents/{doc_id}/content", get_content),
        web.get("/v1/documents/{doc_id}/receipt", get_receipt),
        web.get("/v1/checkpoints/latest", latest_checkpoint),
        web.get("/v1/proofs/consistency", consistency_proof),
    ]
