"""Log stream routes: append a segment, list streams, a stream's head, its segments.

``PUT /v1/streams/{name}/segments/{seq}?start=&end=&sha256=&prev_sha256=[&cut_at=]``
takes the segment's bytes as the raw body (docs/log-streams.md gives the rules).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from notary import errors
from notary.http.documents import CHUNK, principal
from notary.streams import SegmentMeta, StreamService, check_stream_name

STREAMS = web.AppKey("streams", StreamService)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UINT = re.compile(r"[0-9]{1,19}")


def _uint(request: web.Request, name: str, required: bool = True) -> int | None:
    text = request.query.get(name)
    if text is None:
        if required:
            raise errors.BadRequestError(f"query parameter {name!r} is required")
        return None
    if not _UINT.fullmatch(text) or int(text) >= 2**63:
        raise errors.BadRequestError(f"{name} must be a non-negative integer")
    return int(text)


def _hex64(request: web.Request, name: str) -> str:
    text = request.query.get(name, "")
    if not _HEX64.fullmatch(text):
        raise errors.BadRequestError(f"query parameter {name!r} must be 64 hex digits")
    return text.lower()


def _time(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise errors.BadRequestError(
            f"{name} must be an ISO 8601 time with a zone, e.g. 2026-01-02T03:04:05Z"
        )
    return value.astimezone(UTC)


def _name(request: web.Request) -> str:
    return check_stream_name(request.match_info["name"])


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    while chunk := await request.content.read(CHUNK):
        yield chunk


async def put_segment(request: web.Request) -> web.Response:
    """PUT /v1/streams/{name}/segments/{seq}: append one segment (201), or find the
    identical one already accepted (200)."""
    name = _name(request)
    seq_text = request.match_info["seq"]
    if not _UINT.fullmatch(seq_text) or int(seq_text) >= 2**63:
        raise errors.BadRequestError("seq must be a non-negative integer")
    start, end = _uint(request, "start"), _uint(request, "end")
    assert start is not None and end is not None
    if request.content_length is not None and request.content_length != end - start:
        raise errors.BadRequestError(
            f"Content-Length {request.content_length} differs from end - start = {end - start}"
        )
    meta = SegmentMeta(
        seq=int(seq_text),
        start=start,
        end=end,
        sha256=_hex64(request, "sha256"),
        prev_sha256=_hex64(request, "prev_sha256"),
        cut_at=_time(request, "cut_at") or datetime.now(UTC),
    )
    segment, created = await request.app[STREAMS].append(
        principal(request), name, meta, _body(request)
    )
    if not created:
        # Drain the unread body so the connection can be kept alive.
        while await request.content.read(CHUNK):
            pass
    return web.json_response(
        segment.to_json(),
        status=201 if created else 200,
        headers={"Location": f"/v1/streams/{name}/segments/{segment.seq}"},
    )


async def list_streams(request: web.Request) -> web.Response:
    """GET /v1/streams: the caller's organisation's streams and their heads."""
    streams = await request.app[STREAMS].streams(principal(request))
    return web.json_response({"streams": [s.to_json() for s in streams]})


async def get_stream(request: web.Request) -> web.Response:
    """GET /v1/streams/{name}: the stream and its head."""
    stream = await request.app[STREAMS].stream(principal(request), _name(request))
    return web.json_response(stream.to_json())


async def list_segments(request: web.Request) -> web.Response:
    """GET /v1/streams/{name}/segments: segments in seq order (at most ``limit``, 1000),
    with their receipts (against one checkpoint) when ``receipts=true``."""
    service = request.app[STREAMS]
    who = principal(request)
    limit = _uint(request, "limit", required=False) or 1000
    stream, segments = await service.segments(
        who,
        _name(request),
        from_seq=_uint(request, "from_seq", required=False),
        to_seq=_uint(request, "to_seq", required=False),
        from_time=_time(request, "from_time"),
        to_time=_time(request, "to_time"),
        limit=limit,
    )
    items = [g.to_json() for g in segments]
    if (request.query.get("receipts") or "").lower() in ("1", "true", "yes"):
        receipts = await service.receipts(who, segments)
        for item in items:
            receipt = receipts.get(item["seq"])
            item["receipt"] = receipt.to_json() if receipt is not None else None
    return web.json_response(
        {"stream": stream.to_json(), "segments": items, "more": len(segments) >= min(limit, 1000)}
    )


def stream_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.put("/v1/streams/{name}/segments/{seq}", put_segment),
        web.get("/v1/streams", list_streams),
        web.get("/v1/streams/{name}", get_stream),
        web.get("/v1/streams/{name}/segments", list_segments),
    ]
