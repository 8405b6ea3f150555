"""Errors of the notary service, each with its HTTP status and a stable ``code``.

The HTTP layer renders every :class:`NotaryError` as an RFC 9457 problem details
document (``application/problem+json``) whose ``code`` member never changes
meaning; clients branch on ``code``, people read ``title`` and ``detail``::

    NotaryError                       500 internal_error
    ├── BadRequestError               400 bad_request
    ├── UnauthorizedError             401 unauthorized
    ├── ForbiddenError                403 forbidden
    ├── NotFoundError                 404 not_found
    │   ├── DocumentNotFoundError     404 document_not_found
    │   └── CaseOrderNotFoundError    404 case_order_not_found
    ├── MethodNotAllowedError         405 method_not_allowed
    ├── PayloadTooLargeError          413 payload_too_large
    ├── UnsupportedMediaTypeError     415 unsupported_media_type
    ├── InvalidMetadataError          422 invalid_metadata
    ├── DigestMismatchError           422 sha256_mismatch
    ├── InvalidRequestError           422 invalid_request
    ├── MalformedReceiptError         422 malformed_receipt
    ├── CaseOrderExistsError          409 case_order_exists
    ├── NotAnchoredError              409 not_anchored
    ├── AlreadySupersededError        409 already_superseded
    ├── RangeNotSatisfiableError      416 range_not_satisfiable
    ├── StorageUnavailableError       503 storage_unavailable
    ├── SealingKeyUnavailableError    503 sealing_key_unavailable
    └── ChainUnavailableError         503 chain_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar


class NotaryError(Exception):
    """Base of the service's errors; ``status`` and ``code`` drive the HTTP answer."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem details object for this error."""
        body: dict[str, Any] = {
            "type": f"https://notary.invalid/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestError(NotaryError):
    """The request is malformed."""

    status, code, title = 400, "bad_request", "Bad request"


class UnauthorizedError(NotaryError):
    """No valid bearer token: missing, unknown or revoked (answered with WWW-Authenticate)."""

    status, code, title = 401, "unauthorized", "Unauthorized"


class ForbiddenError(NotaryError):
    """The caller's role may not do this (for a document it may see at all)."""

    status, code, title = 403, "forbidden", "Forbidden"


class NotFoundError(NotaryError):
    """No such resource."""

    status, code, title = 404, "not_found", "Not found"


class DocumentNotFoundError(NotFoundError):
    """No document with that id (or none this caller may see)."""

    code, title = "document_not_found", "Document not found"


class CaseOrderNotFoundError(NotFoundError):
    """No case order with that reference addressed to the caller's court."""

    code, title = "case_order_not_found", "Case order not found"


class MethodNotAllowedError(NotaryError):
    """The resource exists but not with that method."""

    status, code, title = 405, "method_not_allowed", "Method not allowed"


class PayloadTooLargeError(NotaryError):
    """The body exceeds the configured limit."""

    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaTypeError(NotaryError):
    """The body's content type is not one this endpoint accepts."""

    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class InvalidMetadataError(NotaryError):
    """Document metadata that fails validation."""

    status, code, title = 422, "invalid_metadata", "Invalid metadata"


class DigestMismatchError(NotaryError):
    """The uploaded bytes do not hash to the SHA-256 the caller announced."""

    status, code, title = 422, "sha256_mismatch", "SHA-256 mismatch"


class InvalidRequestError(NotaryError):
    """A well-formed request whose fields fail validation (shares, case orders, verify)."""

    status, code, title = 422, "invalid_request", "Invalid request"


class MalformedReceiptError(NotaryError):
    """Receipt bytes that are not a receipt at all (an invalid receipt is a verdict)."""

    status, code, title = 422, "malformed_receipt", "Malformed receipt"


class CaseOrderExistsError(NotaryError):
    """A case order with that reference is already recorded."""

    status, code, title = 409, "case_order_exists", "Case order exists"


class NotAnchoredError(NotaryError):
    """The document's entry is not committed yet, so there is no receipt."""

    status, code, title = 409, "not_anchored", "Not anchored yet"


class AlreadySupersededError(NotaryError):
    """The document named by ``supersedes`` already has a newer version."""

    status, code, title = 409, "already_superseded", "Already superseded"


class RangeNotSatisfiableError(NotaryError):
    """A Range header outside the document."""

    status, code, title = 416, "range_not_satisfiable", "Range not satisfiable"


class StorageUnavailableError(NotaryError):
    """Too few storage nodes answer to store or rebuild the document."""

    status, code, title = 503, "storage_unavailable", "Storage unavailable"


class SealingKeyUnavailableError(NotaryError):
    """The master key a confidential document needs (to seal or to open it) is not
    configured, or a different key is configured under its id: an operator's fix."""

    status, code, title = 503, "sealing_key_unavailable", "Sealing key unavailable"


class ChainUnavailableError(NotaryError):
    """The validators cannot be reached or cannot reach a quorum."""

    status, code, title = 503, "chain_unavailable", "Ledger unavailable"
