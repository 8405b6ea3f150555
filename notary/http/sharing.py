"""Routes for sharing documents with other organisations, case orders and custody logs."""

from __future__ import annotations

from aiohttp import web

from notary import errors
from notary.http.documents import SERVICE, _doc_id, _int_param, principal
from notary.http.json_body import json_object, string_field

MAX_CUSTODY_PAGE = 1000


async def post_share(request: web.Request) -> web.Response:
    """POST /v1/documents/{id}/shares {"org": ...}: share the version chain with an org."""
    body = await json_object(request)
    share, created = await request.app[SERVICE].share(
        principal(request), _doc_id(request), string_field(body, "org")
    )
    return web.json_response(share.to_json(), status=201 if created else 200)


async def get_shares(request: web.Request) -> web.Response:
    """GET /v1/documents/{id}/shares: the organisations the version chain is shared with."""
    shares = await request.app[SERVICE].shares(principal(request), _doc_id(request))
    return web.json_response({"shares": [s.to_json() for s in shares]})


async def post_case_order(request: web.Request) -> web.Response:
    """POST /v1/case-orders {"case_ref", "court_org", "documents": [ids]} (admins)."""
    body = await json_object(request)
    documents = body.get("documents")
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise errors.InvalidRequestError("documents must be a list of document ids")
    order = await request.app[SERVICE].create_case_order(
        principal(request),
        string_field(body, "case_ref"),
        string_field(body, "court_org"),
        documents,
    )
    return web.json_response(order.to_json(), status=201)


async def get_case_orders(request: web.Request) -> web.Response:
    """GET /v1/case-orders: every order (admins, auditors) or the court's own."""
    orders = await request.app[SERVICE].case_orders(principal(request))
    return web.json_response({"case_orders": [o.to_json() for o in orders]})


async def get_custody(request: web.Request) -> web.Response:
    """GET /v1/documents/{id}/custody[?after=&limit=]: custody events with their proofs."""
    after = _int_param(request, "after", required=False) or 0
    limit = _int_param(request, "limit", required=False) or 100
    if not 1 <= limit <= MAX_CUSTODY_PAGE:
        raise errors.BadRequestError(f"limit must be 1 to {MAX_CUSTODY_PAGE}")
    doc_id = _doc_id(request)
    events = await request.app[SERVICE].custody(
        principal(request), doc_id, after=after, limit=limit
    )
    next_after = events[-1].id if len(events) == limit else None
    return web.json_response(
        {"document": doc_id, "events": [e.to_json() for e in events], "next_after": next_after}
    )


def sharing_routes() -> list[web.RouteDef]:
    """The routes of this module."""
    return [
        web.post("/v1/documents/{doc_id}/shares", post_share),
        web.get("/v1/documents/{doc_id}/shares", get_shares),
        web.get("/v1/documents/{doc_id}/custody", get_custody),
        web.post("/v1/case-orders", post_case_order),
        web.get("/v1/case-orders", get_case_orders),
    ]
