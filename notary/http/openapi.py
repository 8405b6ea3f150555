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
    _query("confidential", {"type": "boolean"}, "Seal in storage (dd_draft always is)."),
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
        "sealed": {"type": "boolean", "description": "Stored encrypted (docs/sealing.md)"},
    },
}

_STREAM_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
}
_STREAM = {
    "type": "object",
    "description": "A log stream and its head (docs/log-streams.md)",
    "properties": {
        "id": {"type": "string", "description": "Opaque id, the entries' stream member"},
        "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "head": {
            "type": "object",
            "properties": {
                "seq": {"type": "integer", "description": "-1 while empty"},
                "end": {"type": "integer", "description": "Stream offset of the next segment"},
                "sha256": {"type": ["string", "null"]},
                "entry_hash": {"type": ["string", "null"]},
                "at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "anchored_seq": {"type": "integer", "description": "All segments up to it anchored"},
    },
}
_SEGMENT = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "start": {"type": "integer"},
        "end": {"type": "integer"},
        "sha256": {"type": "string"},
        "entry_hash": {"type": "string"},
        "document_id": {"type": "string"},
        "status": {"type": "string", "enum": ["storing", "anchoring", "anchored"]},
        "cut_at": {"type": "string", "format": "date-time"},
        "leaf_index": {"type": ["integer", "null"]},
        "receipt": {"description": "With receipts=true: the receipt, or null if not anchored"},
    },
}
_HEX64_SCHEMA = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_STREAM_PATHS: dict[str, Any] = {
    "/v1/streams": {
        "get": {
            "summary": "The caller's log streams and their heads",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"streams": {"type": "array", "items": _STREAM}},
                    },
                    "Streams",
                )
            },
        }
    },
    "/v1/streams/{name}": {
        "get": {
            "summary": "A log stream and its head",
            "parameters": [_STREAM_NAME],
            "responses": {"200": _json(_STREAM, "The stream"), "400": _PROBLEM, "404": _PROBLEM},
        }
    },
    "/v1/streams/{name}/segments": {
        "get": {
            "summary": "Segments in seq order, optionally with their receipts",
            "parameters": [
                _STREAM_NAME,
                _query("from_seq", {"type": "integer"}, "First seq."),
                _query("to_seq", {"type": "integer"}, "Last seq (inclusive)."),
                _query("from_time", {"type": "string", "format": "date-time"}, "cut_at >= this."),
                _query("to_time", {"type": "string", "format": "date-time"}, "cut_at < this."),
                _query("limit", {"type": "integer", "maximum": 1000}, "At most (1000)."),
                _query("receipts", {"type": "boolean"}, "Include each segment's receipt."),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "stream": _STREAM,
                            "segments": {"type": "array", "items": _SEGMENT},
                            "more": {"type": "boolean"},
                        },
                    },
                    "Segments",
                ),
                "400": _PROBLEM,
                "404": _PROBLEM,
                "503": _PROBLEM,
            },
        }
    },
    "/v1/streams/{name}/segments/{seq}": {
        "put": {
            "summary": "Append segment seq (raw body); the identical segment again is a no-op",
            "parameters": [
                _STREAM_NAME,
                {"name": "seq", "in": "path", "required": True, "schema": {"type": "integer"}},
                _query("start", {"type": "integer"}, "Stream offset of the first byte.", True),
                _query("end", {"type": "integer"}, "Stream offset after the last byte.", True),
                _query("sha256", _HEX64_SCHEMA, "SHA-256 of the body.", True),
                _query("prev_sha256", _HEX64_SCHEMA, "SHA-256 of segment seq-1 (zeros).", True),
                _query("cut_at", {"type": "string", "format": "date-time"}, "When it was cut."),
            ],
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "200": _json(_SEGMENT, "Already accepted with the same content"),
                "201": _json(_SEGMENT, "Accepted; anchoring in progress"),
                "400": _PROBLEM,
                "409": _PROBLEM,
                "413": _PROBLEM,
                "422": _PROBLEM,
                "503": _PROBLEM,
            },
        }
    },
}

_VERDICT = {
    "type": "object",
    "required": ["valid", "document", "checks"],
    "properties": {
        "valid": {"type": "boolean"},
        "document": {
            "type": "object",
            "properties": {"sha256": {"type": "string"}, "size": {"type": ["integer", "null"]}},
        },
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["pass", "fail", "skipped", "info"]},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}
_SHARE = {
    "type": "object",
    "properties": {
        "org": {"type": "string"},
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_CASE_ORDER = {
    "type": "object",
    "required": ["case_ref", "court_org", "documents"],
    "properties": {
        "case_ref": {"type": "string"},
        "court_org": {"type": "string"},
        "documents": {"type": "array", "items": {"type": "string"}},
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_ACCESS_PATHS: dict[str, Any] = {
    "/v1/verify": {
        "post": {
            "summary": "Verify a receipt for a file or its SHA-256 (public, no token)",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "sha256": _HEX64_SCHEMA,
                                "receipt": {"type": "string"},
                            },
                        }
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["sha256", "receipt"],
                            "properties": {
                                "sha256": _HEX64_SCHEMA,
                                "size": {"type": "integer"},
                                "receipt": {"$ref": "#/components/schemas/Receipt"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "200": _json(_VERDICT, "The verdict, valid or not, with every check"),
                "413": _PROBLEM,
                "415": _PROBLEM,
                "422": _PROBLEM,
            },
        }
    },
    "/v1/documents/{doc_id}/shares": {
        "get": {
            "summary": "Organisations the version chain is shared with",
            "parameters": [_DOC_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"shares": {"type": "array", "items": _SHARE}},
                    },
                    "Shares",
                ),
                "403": _PROBLEM,
                "404": _PROBLEM,
            },
        },
        "post": {
            "summary": "Share the version chain with an organisation (owner only)",
            "parameters": [_DOC_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["org"],
                            "properties": {"org": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_SHARE, "Already shared"),
                "201": _json(_SHARE, "Shared"),
                "403": _PROBLEM,
                "404": _PROBLEM,
                "422": _PROBLEM,
            },
        },
    },
    "/v1/documents/{doc_id}/custody": {
        "get": {
            "summary": "Custody events (content reads), each with an offline proof once "
            "anchored (docs/custody.md)",
            "parameters": [
                _DOC_ID,
                _query("after", {"type": "integer"}, "Events after this id."),
                _query("limit", {"type": "integer", "maximum": 1000}, "At most (100)."),
            ],
            "responses": {
                "200": _json({"type": "object"}, "Events, oldest first"),
                "403": _PROBLEM,
                "404": _PROBLEM,
                "503": _PROBLEM,
            },
        }
    },
    "/v1/case-orders": {
        "get": {
            "summary": "Case orders (admins, auditors: all; a court: its own)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"case_orders": {"type": "array", "items": _CASE_ORDER}},
                    },
                    "Case orders",
                ),
                "403": _PROBLEM,
            },
        },
        "post": {
            "summary": "Record a court's case order naming documents (admins)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _CASE_ORDER}},
            },
            "responses": {
                "201": _json(_CASE_ORDER, "Recorded"),
                "403": _PROBLEM,
                "409": _PROBLEM,
                "422": _PROBLEM,
            },
        },
    },
}
# Routes anyone may call without a token (notary.http.auth.PUBLIC_PATHS).
_PUBLIC = (
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/v1/checkpoints/latest",
    "/v1/proofs/consistency",
    "/v1/verify",
)

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
                "summary": "The original bytes, rebuilt and verified (Range supported); "
                "every read is a custody event",
                "parameters": [
                    _DOC_ID,
                    {"name": "Range", "in": "header", "schema": {"type": "string"}},
                    _query("case", {"type": "string"}, "Case order a court reads under."),
                ],
                "responses": {
                    "200": {"description": "The whole document"},
                    "206": {"description": "The requested range"},
                    "403": _PROBLEM,
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
        **_STREAM_PATHS,
        **_ACCESS_PATHS,
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
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "With [auth] mode = tokens (docs/api.md): 401 without a "
                "live token, 403 for a role that may not do this",
            }
        },
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


for _path in _PUBLIC:
    for _operation in SPEC["paths"][_path].values():
        _operation["security"] = []


async def openapi(_: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(SPEC)
