"""Reading small JSON request bodies, bounded and validated once at the boundary."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from notary import errors

MAX_JSON_BYTES = 256 * 1024


async def json_object(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's body as a JSON object.

    415 unless the content type is application/json; 413 over ``limit`` bytes; 400 for
    bytes that are not JSON; 422 for JSON that is not an object.
    """
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaTypeError("send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLargeError(f"the body exceeds {limit} bytes", limit=limit)
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise errors.PayloadTooLargeError(f"the body exceeds {limit} bytes", limit=limit)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise errors.BadRequestError(f"the body is not UTF-8 JSON: {e}") from None
    if not isinstance(value, dict):
        raise errors.InvalidRequestError("the body must be a JSON object")
    return value


def string_field(body: dict[str, Any], name: str) -> str:
    """The string member ``name``; 422 if missing or not a string."""
    value = body.get(name)
    if not isinstance(value, str):
        raise errors.InvalidRequestError(f"{name} must be a string", field=name)
    return value
