"""RFC 9457 problem details for the node's HTTP API, each with a stable ``code``.

A failure is a :class:`Problem` (raised by handlers, or mapped from chain errors and
aiohttp's own HTTP errors by :func:`problem_middleware`); the response is
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``, ``code``
and ``instance``, and never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from chain.errors import ChainError, MempoolFullError
from chain.node.results import BatchTooLargeError, EntryError, NotFoundError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://notary.example/problems/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An HTTP failure with a stable machine-readable ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """``code`` is stable (clients switch on it); ``detail`` is for humans."""
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}

    def response(self, instance: str) -> web.Response:
        """The problem+json response."""
        body = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
            "code": self.code,
            "instance": instance,
        }
        return web.Response(
            status=self.status,
            text=json.dumps(body),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )


def bad_request(detail: str) -> Problem:
    """400 ``bad_request``: malformed parameters or body."""
    return Problem(400, "bad_request", "Bad request", detail)


def busy(detail: str, retry_after_s: int = 1) -> Problem:
    """503 ``busy`` with Retry-After: the mempool is full, retry later."""
    return Problem(503, "busy", "Busy, retry later", detail, {"Retry-After": str(retry_after_s)})


def from_chain_error(e: ChainError) -> Problem:
    """The problem for a chain error crossing the HTTP boundary."""
    if isinstance(e, MempoolFullError):
        return busy(str(e))
    if isinstance(e, BatchTooLargeError):
        return Problem(413, "too_large", "Request too large", str(e))
    if isinstance(e, EntryError):
        return Problem(422, "invalid_entry", "Invalid entries", str(e))
    if isinstance(e, NotFoundError):
        return Problem(404, "not_found", "Not found", str(e))
    return Problem(500, "chain_error", "Ledger error", str(e))


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("too_large", "Request too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure of ``handler`` with problem details."""
    try:
        return await handler(request)
    except Problem as p:
        return p.response(request.path)
    except ChainError as e:
        return from_chain_error(e).response(request.path)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code, title = _HTTP_CODES.get(e.status, ("http_error", e.reason or "HTTP error"))
        return Problem(e.status, code, title, e.reason or title).response(request.path)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(500, "internal", "Internal error", "unexpected server error").response(
            request.path
        )
