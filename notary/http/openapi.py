"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

A test checks that every route of the application is described here and every path
described here is routed, with the same methods.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_DOC_ID = {
    "name": "doc_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
_KINDS = ["filing", "disclosure", "transfer_agreement", "broker_log", "dd_draft"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


_METADATA_PARAMS = [
    _query("kind", {"type": "string", "enum": _KINDS}, "What the document is.", required=True),
    _query("title", {"type": "string", "maxLength": 512}, "Title (index only, never anchored)."),
    _query("filename", {"type": "string", "maxLength": 255}, "Original file name."),
    _query("media_type", {"type": "string"}, "Media type (default: the Content-Type)."),
    _query("project", {"type": "string"}, "Project or case reference."),
    _query("supersedes", {"type": "string"}, "Id of the version this one replaces."),
    _query("sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "Expected SHA-256."),
    _query("wait", {"type": "boolean"}, "Answer with the receipt once anchored."),
    _query("timeout", {"type": "number"}, "Seconds to wait with wait=true (default 60)."),
]

_DOCUMENT = {
    "type": "object",
    "required": ["id", "kind", "status", "version"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": _KINDS},
        "title": {"type": ["string", "null"]},
        "filename": {"type": ["string", "null"]},
        "media_type": {"type": ["string", "null"]},
        "project": {"type": ["string", "null"]},
        "supersedes": {"type": ["string", "null"]},
        "version": {"type": "integer"},
        "status": {"type": "string", "enum": ["storing", "anchoring", "anchored"]},
        "size": {"type": ["integer", "null"]},
        "sha256": {"type": ["string", "null"]},
        "leaf_index": {"type": ["integer", "null"]},
        "block_height": {"type": ["integer", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "anchored_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Evidence notary API",
        "version": "1",
        "description": "Upload, anchor, receipt, verify and retrieve documents. Errors are "
        "RFC 9457 problem details with a stable `code`.",
    },
    "paths": {
        "/v1/documents": {
            "post": {
                "summary": "Upload a document (raw body, or multipart/form-data with a file part)",
                "parameters": _METADATA_PARAMS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                        "multipart/form-data": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {
                                "document": _DOCUMENT,
                                "receipt": {"$ref": "#/components/schemas/Receipt"},
                            },
                        },
                        "Anchored (wait=true): the document and its receipt",
                    ),
                    "202": _json(_DOCUMENT, "Stored; anchoring in progress"),
                    "409": _PROBLEM,
                    "413": _PROBLEM,
                    "422": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/documents/{doc_id}": {
            "get": {
                "summary": "Metadata and status",
                "parameters": [_DOC_ID],
                "responses": {"200": _json(_DOCUMENT, "The document"), "404": _PROBLEM},
            }
        },
        "/v1/documents/{doc_id}/versions": {
            "get": {
                "summary": "The version chain, oldest first",
                "parameters": [_DOC_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"versions": {"type": "array", "items": _DOCUMENT}},
                        },
                        "Versions",
                    ),
                    "404": _PROBLEM,
                },
            }
        },
        "/v1/documents/{doc_id}/content": {
            "get": {
                "summary": "The original bytes, rebuilt and verified (Range supported)",
                "parameters": [
                    _DOC_ID,
                    {"name": "Range", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "The whole document"},
                    "206": {"description": "The requested range"},
                    "404": _PROBLEM,
                    "416": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/documents/{doc_id}/receipt": {
            "get": {
                "summary": "The receipt (docs/receipt-format.md)",
                "parameters": [
                    _DOC_ID,
                    _query(
                        "tree_size", {"type": "integer"}, "Against the checkpoint of this size."
                    ),
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Receipt"}, "The receipt"),
                    "404": _PROBLEM,
                    "409": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/checkpoints/latest": {
            "get": {
                "summary": "The newest committed checkpoint (C2SP signed note)",
                "responses": {
                    "200": {"description": "Signed note", "content": {"text/plain": {}}},
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/proofs/consistency": {
            "get": {
                "summary": "RFC 9162 consistency proof between two tree sizes",
                "parameters": [
                    _query("from", {"type": "integer"}, "Older tree size.", required=True),
                    _query("to", {"type": "integer"}, "Newer tree size.", required=True),
                ],
                "responses": {
                    "200": _json({"type": "object"}, "The proof (base64 hashes)"),
                    "400": _PROBLEM,
                    "404": _PROBLEM,
                },
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: storage quorum, database, chain",
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
    },
    "components": {
        "schemas": {
            "Receipt": {"type": "object", "description": "See docs/receipt-format.md"},
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "code"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
            },
        },
        "responses": {
            "Problem": {
                "description": "RFC 9457 problem details",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        },
    },
}


async def openapi(_: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(SPEC)
