"""RFC 9457 problem details for every error the HTTP layer answers with.

The middleware turns :class:`notary.errors.NotaryError` into its problem document,
maps aiohttp's own HTTP errors (unknown route, wrong method, body too large) to
problems with stable codes, and turns anything unexpected into a 500 problem that
carries no traceback (the traceback goes to the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from notary import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_TO_ERROR: dict[int, type[errors.NotaryError]] = {
    400: errors.BadRequestError,
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    413: errors.PayloadTooLargeError,
    415: errors.UnsupportedMediaTypeError,
}


def problem_response(
    error: errors.NotaryError, instance: str | None = None, status: int | None = None
) -> web.Response:
    """The HTTP response carrying ``error`` as problem details (``status`` overrides its own)."""
    body = error.problem(instance)
    if status is not None:
        body["status"] = status
    return web.Response(status=body["status"], text=json.dumps(body), content_type=PROBLEM_JSON)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure of ``handler`` with problem details, never a traceback."""
    try:
        return await handler(request)
    except errors.NotaryError as e:
        return problem_response(e, request.path)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        kind = _HTTP_TO_ERROR.get(e.status)
        if kind is None:
            kind = errors.BadRequestError if e.status < 500 else errors.NotaryError
        return problem_response(kind(e.reason or kind.title), request.path, e.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(errors.NotaryError("unexpected server error"), request.path)
