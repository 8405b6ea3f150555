"""Document metadata as uploaded: validated once, at the boundary."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from notary.errors import InvalidMetadataError

DOC_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/:#-]{0,127}")
FIELDS = (
    "kind",
    "title",
    "filename",
    "media_type",
    "project",
    "supersedes",
    "sha256",
    "confidential",
)


class DocumentKind(enum.StrEnum):
    FILING = "filing"
    DISCLOSURE = "disclosure"
    TRANSFER_AGREEMENT = "transfer_agreement"
    BROKER_LOG = "broker_log"
    DD_DRAFT = "dd_draft"


@dataclass(frozen=True)
class UploadMetadata:
    kind: DocumentKind
    title: str | None = None
    filename: str | None = None
    media_type: str | None = None
    project: str | None = None
    supersedes: str | None = None
    sha256: str | None = None  # expected SHA-256 (lowercase hex), if the caller gave one
    confidential: bool = False  # sealed in storage (docs/sealing.md); dd_draft always is


def _text(value: str, field: str, limit: int, errors: list[dict[str, str]]) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > limit or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        errors.append(
            {"field": field, "reason": f"at most {limit} characters, no control characters"}
        )
    return value


def _check(
    value: str | None,
    pattern: re.Pattern[str],
    field: str,
    reason: str,
    errors: list[dict[str, str]],
) -> None:
    if value is not None and not pattern.fullmatch(value):
        errors.append({"field": field, "reason": reason})


def parse_metadata(fields: Mapping[str, str], *, max_title_chars: int = 512) -> UploadMetadata:
    """Validate upload metadata from query parameters, headers or form fields.

    Raises InvalidMetadataError (422) listing every field at fault.
    """
    errors: list[dict[str, str]] = []
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        errors.extend({"field": f, "reason": "unknown metadata field"} for f in unknown)
    kind_text = fields.get("kind", "").strip()
    kind: DocumentKind | None = None
    try:
        kind = DocumentKind(kind_text)
    except ValueError:
        allowed = ", ".join(k.value for k in DocumentKind)
        errors.append({"field": "kind", "reason": f"required, one of: {allowed}"})
    title = _text(fields.get("title", ""), "title", max_title_chars, errors)
    filename = _text(fields.get("filename", ""), "filename", 255, errors)
    if filename is not None and ("/" in filename or "\\" in filename or filename in (".", "..")):
        errors.append({"field": "filename", "reason": "a file name, not a path"})
    media_type = fields.get("media_type", "").strip().lower() or None
    _check(media_type, _MEDIA_TYPE, "media_type", "a media type such as application/pdf", errors)
    project = fields.get("project", "").strip() or None
    _check(project, _PROJECT, "project", "1-128 letters, digits, spaces and ._/:#-", errors)
    supersedes = fields.get("supersedes", "").strip().lower() or None
    _check(supersedes, DOC_ID, "supersedes", "a document id (32 hex digits)", errors)
    sha256 = fields.get("sha256", "").strip() or None
    _check(sha256, _SHA256, "sha256", "64 hex digits", errors)
    confidential_text = fields.get("confidential", "").strip().lower()
    if confidential_text not in ("", "true", "false", "1", "0", "yes", "no"):
        errors.append({"field": "confidential", "reason": "true or false"})
    if errors or kind is None:
        raise InvalidMetadataError(
            "invalid document metadata: "
            + "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            errors=errors,
        )
    return UploadMetadata(
        kind=kind,
        title=title,
        filename=filename,
        media_type=media_type,
        project=project,
        supersedes=supersedes,
        sha256=sha256.lower() if sha256 else None,
        confidential=confidential_text in ("true", "1", "yes"),
    )
