"""Authentication: who is calling, as a :class:`notary.access.Principal` on the request.

Two modes (``[auth] mode``):

- ``none`` (the embedded default, loopback only): every caller is the local admin.
- ``tokens``: every route except the public ones needs ``Authorization: Bearer <token>``
  with a live token (notary.tokens). A missing, unknown or revoked token is a 401
  problem (``unauthorized``) with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750).

Public routes need no token: health, readiness, the OpenAPI document, the latest
checkpoint, consistency proofs and receipt verification ("anyone may verify").
Tokens are never logged; only the token's name ends up in custody records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from notary import errors
from notary.access import Principal
from notary.http.documents import PRINCIPAL
from notary.http.problems import Handler, problem_response

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/v1/checkpoints/latest",
        "/v1/proofs/consistency",
        "/v1/verify",
    }
)
LOCAL_ADMIN = Principal(org="local", role="admin", name="local")
REALM = "notary"

# token -> its principal, or None for an unknown or revoked token
Authenticate = Callable[[str], Awaitable[Principal | None]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def open_access() -> Middleware:
    """Mode ``none``: every caller acts as the local administrator."""

    @web.middleware
    async def local_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[PRINCIPAL] = LOCAL_ADMIN
        return await handler(request)

    return local_admin


def _is_public(request: web.Request) -> bool:
    match = request.match_info
    if match.http_exception is not None:
        return True  # no such route or method: let the router answer 404/405
    resource = match.route.resource
    return resource is not None and resource.canonical in PUBLIC_PATHS


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _challenge(request: web.Request, detail: str, error: str | None) -> web.Response:
    response = problem_response(errors.UnauthorizedError(detail), request.path)
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def bearer_tokens(authenticate: Authenticate) -> Middleware:
    """Mode ``tokens``: resolve the bearer token of every non-public request."""

    @web.middleware
    async def tokens(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_public(request):
            return await handler(request)
        token = _bearer(request)
        if token is None:
            return _challenge(request, "this endpoint needs a bearer token", None)
        who = await authenticate(token)
        if who is None:
            return _challenge(request, "the bearer token is unknown or revoked", "invalid_token")
        request[PRINCIPAL] = who
        return await handler(request)

    return tokens
