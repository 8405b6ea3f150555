"""The manifest of a stored document: its format, parsing and the on-node envelope.

A manifest says how to rebuild a document: codec and parameters, segment
size, each segment's size and SHA-256, and for each fragment its node, key,
size and SHA-256; plus the document's size and SHA-256. It is JSON; the
exact format is specified in ``docs/storage.md``. On the nodes a manifest is
stored inside an envelope carrying the SHA-256 of the manifest's canonical
(RFC 8785) JSON, so a damaged copy is detected and ignored.

Pure functions over frozen dataclasses; parsing range-checks every field and
raises ManifestError naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from storage.canonical import canonical_json, canonical_json_of_plain, is_plain
from storage.codec import MAX_FRAGMENTS, SUPPORTED_EC_TYPES
from storage.errors import InvalidKeyError, ManifestError
from storage.nodes.base import validate_key

FORMAT = "notary-storage-manifest"
VERSION = 1
ENVELOPE_FORMAT = "notary-storage-manifest-envelope"
CODEC_LIBRARY = "liberasurecode"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DOC_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_CREATED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_MAX_SAFE_INT = 2**53 - 1  # RFC 8785 / I-JSON: integers beyond this are not exact


def validate_doc_id(doc_id: str) -> str:
    """Return ``doc_id`` if it is 1..64 of ``[a-z0-9-]`` not starting with '-', else raise."""
    if not isinstance(doc_id, str) or not _DOC_ID.fullmatch(doc_id):
        raise ManifestError(f"invalid document id {doc_id!r}: need 1..64 of [a-z0-9-]")
    return doc_id


def fragment_key(doc_id: str, segment: int, fragment: int) -> str:
    """The node key of fragment ``fragment`` of segment ``segment`` of ``doc_id``."""
    return f"frag/{doc_id}/{segment:08d}.{fragment:02d}"


def fragment_prefix(doc_id: str) -> str:
    """The key prefix under which all of a document's fragments live."""
    return f"frag/{doc_id}/"


def manifest_key(doc_id: str) -> str:
    """The node key of a document's manifest copy."""
    return f"manifest/{doc_id}.json"


MANIFEST_PREFIX = "manifest/"


def doc_id_from_manifest_key(key: str) -> str | None:
    """The doc_id named by a manifest key, or None if the key is not one."""
    if not (key.startswith(MANIFEST_PREFIX) and key.endswith(".json")):
        return None
    doc_id = key[len(MANIFEST_PREFIX) : -len(".json")]
    return doc_id if _DOC_ID.fullmatch(doc_id) else None


@dataclass(frozen=True)
class CodecInfo:
    """Which liberasurecode backend and parameters encoded the document."""

    ec_type: str
    k: int
    m: int
    library: str = CODEC_LIBRARY


@dataclass(frozen=True)
class FragmentEntry:
    """One stored fragment: where it is and what its bytes hash to."""

    index: int
    node: str
    key: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SegmentEntry:
    """One segment: its plaintext size and digest and its k + m fragments."""

    index: int
    size: int
    sha256: str
    fragments: tuple[FragmentEntry, ...]


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild and verify one stored document."""

    doc_id: str
    size: int
    sha256: str
    codec: CodecInfo
    segment_size: int
    segments: tuple[SegmentEntry, ...]
    created: str
    revision: int = 1
    encryption: Mapping[str, Any] | None = None
    format: str = FORMAT
    version: int = VERSION

    def nodes(self) -> tuple[str, ...]:
        """Distinct node names holding fragments of this document, sorted."""
        return tuple(sorted({f.node for s in self.segments for f in s.fragments}))

    @property
    def one_round(self) -> bool:
        """True if a put may have written this manifest's copies together with its
        fragments (one segment, never repaired): a copy then proves the document was
        acknowledged only together with k of its fragments (docs/storage.md, "Torn
        puts")."""
        return len(self.segments) == 1 and self.revision == 1

    def with_segments(self, segments: Sequence[SegmentEntry], revision: int) -> Manifest:
        """A copy with new segment entries and revision."""
        return replace(self, segments=tuple(segments), revision=revision)


def to_dict(manifest: Manifest) -> dict[str, Any]:
    """The JSON object of a manifest (see docs/storage.md). Its keys are in ascending
    order at every level (the order RFC 8785 writes them in, so canonical_bytes sorts
    nothing), except inside ``encryption``."""
    return {
        "codec": {
            "ec_type": manifest.codec.ec_type,
            "k": manifest.codec.k,
            "library": manifest.codec.library,
            "m": manifest.codec.m,
        },
        "created": manifest.created,
        "doc_id": manifest.doc_id,
        "encryption": None if manifest.encryption is None else dict(manifest.encryption),
        "format": manifest.format,
        "revision": manifest.revision,
        "segment_size": manifest.segment_size,
        "segments": [
            {
                "fragments": [
                    {
                        "index": f.index,
                        "key": f.key,
                        "node": f.node,
                        "sha256": f.sha256,
                        "size": f.size,
                    }
                    for f in s.fragments
                ],
                "index": s.index,
                "sha256": s.sha256,
                "size": s.size,
            }
            for s in manifest.segments
        ],
        "sha256": manifest.sha256,
        "size": manifest.size,
        "version": manifest.version,
    }


def _plain_fields(manifest: Manifest) -> bool:
    """True if every field of the manifest, ``encryption`` aside, is a str or an int of at
    most 53 bits (the types its annotations promise): what storage.canonical's check of
    the whole object would find, in a fraction of its time."""
    ints = [manifest.size, manifest.segment_size, manifest.revision, manifest.version]
    strs = [manifest.doc_id, manifest.sha256, manifest.created, manifest.format]
    codec = manifest.codec
    ints += (codec.k, codec.m)
    strs += (codec.ec_type, codec.library)
    for s in manifest.segments:
        ints += (s.index, s.size)
        strs.append(s.sha256)
        for f in s.fragments:
            ints += (f.index, f.size)
            strs += (f.node, f.key, f.sha256)
    return (
        {*map(type, ints)} == {int}
        and min(ints) >= -_MAX_SAFE_INT
        and max(ints) <= _MAX_SAFE_INT
        and {*map(type, strs)} == {str}
    )


def canonical_bytes(manifest: Manifest) -> bytes:
    """RFC 8785 canonical JSON of the manifest (the bytes its self-digest covers)."""
    obj = to_dict(manifest)
    encryption = obj["encryption"]
    if _plain_fields(manifest) and (encryption is None or is_plain(encryption)):
        return canonical_json_of_plain(obj, keys_in_order=encryption is None)
    return canonical_json(obj)  # rfc8785's bytes, or its refusal


def _get(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise ManifestError(f"{where}: missing field {name!r}")
    value = obj[name]
    # bool is an int in Python; a JSON true is never a valid count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: field {name!r} must be {kind.__name__}")
    return value


def _count(obj: Mapping[str, Any], name: str, where: str, lo: int = 0) -> int:
    value: int = _get(obj, name, int, where)
    if not lo <= value <= _MAX_SAFE_INT:
        raise ManifestError(f"{where}: {name}={value} out of range")
    return value


def _digest(obj: Mapping[str, Any], name: str, where: str) -> str:
    value: str = _get(obj, name, str, where)
    if not _HEX64.fullmatch(value):
        raise ManifestError(f"{where}: {name} must be 64 lowercase hex digits")
    return value


def _fragment(obj: Any, where: str) -> FragmentEntry:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: must be an object")
    node = _get(obj, "node", str, where)
    if not node:
        raise ManifestError(f"{where}: empty node name")
    key = _get(obj, "key", str, where)
    try:
        validate_key(key)
    except InvalidKeyError as e:
        raise ManifestError(f"{where}: {e}") from e
    return FragmentEntry(
        index=_count(obj, "index", where),
        node=node,
        key=key,
        sha256=_digest(obj, "sha256", where),
        size=_count(obj, "size", where, lo=1),
    )


def _segment(obj: Any, where: str, n: int) -> SegmentEntry:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: must be an object")
    raw = _get(obj, "fragments", list, where)
    fragments = tuple(_fragment(f, f"{where} fragment {i}") for i, f in enumerate(raw))
    if [f.index for f in fragments] != list(range(n)):
        raise ManifestError(f"{where}: fragments must be indexed 0..{n - 1} in order")
    if len({f.node for f in fragments}) != n:
        raise ManifestError(f"{where}: fragments of one segment must be on distinct nodes")
    return SegmentEntry(
        index=_count(obj, "index", where),
        size=_count(obj, "size", where, lo=1),
        sha256=_digest(obj, "sha256", where),
        fragments=fragments,
    )


def from_dict(obj: Any) -> Manifest:
    """Parse and range-check a manifest JSON object; raise ManifestError if invalid."""
    if not isinstance(obj, dict):
        raise ManifestError("manifest must be a JSON object")
    where = "manifest"
    if obj.get("format") != FORMAT:
        raise ManifestError(f"not a manifest: format is {obj.get('format')!r}")
    version = _get(obj, "version", int, where)
    if version != VERSION:
        raise ManifestError(f"unsupported manifest version {version} (this code reads {VERSION})")
    doc_id = validate_doc_id(_get(obj, "doc_id", str, where))
    where = f"manifest of {doc_id}"
    codec_obj = _get(obj, "codec", dict, where)
    if codec_obj.get("library") != CODEC_LIBRARY:
        raise ManifestError(f"{where}: unknown codec library {codec_obj.get('library')!r}")
    ec_type = _get(codec_obj, "ec_type", str, where)
    if ec_type not in SUPPORTED_EC_TYPES:
        raise ManifestError(f"{where}: unsupported ec_type {ec_type!r}")
    k = _count(codec_obj, "k", where, lo=1)
    m = _count(codec_obj, "m", where, lo=1)
    if not (m <= k and k + m <= MAX_FRAGMENTS):
        raise ManifestError(f"{where}: invalid codec parameters k={k}, m={m}")
    size = _count(obj, "size", where)
    segment_size = _count(obj, "segment_size", where, lo=1)
    created = _get(obj, "created", str, where)
    if not _CREATED.fullmatch(created):
        raise ManifestError(f"{where}: created must be an RFC 3339 UTC timestamp")
    encryption = obj.get("encryption", None)
    if encryption is not None and not isinstance(encryption, dict):
        raise ManifestError(f"{where}: encryption must be null or an object")
    raw_segments = _get(obj, "segments", list, where)
    segments = tuple(_segment(s, f"{where} segment {i}", k + m) for i, s in enumerate(raw_segments))
    expected_count = -(-size // segment_size)
    if len(segments) != expected_count:
        raise ManifestError(
            f"{where}: {len(segments)} segments, size implies {expected_count} segments"
        )
    for i, s in enumerate(segments):
        want = segment_size if i < expected_count - 1 else size - segment_size * i
        if s.index != i or s.size != want:
            raise ManifestError(f"{where}: segment {i} has index {s.index}, size {s.size}")
    return Manifest(
        doc_id=doc_id,
        size=size,
        sha256=_digest(obj, "sha256", where),
        codec=CodecInfo(ec_type=ec_type, k=k, m=m),
        segment_size=segment_size,
        segments=segments,
        created=created,
        revision=_count(obj, "revision", where, lo=1),
        encryption=encryption,
    )


_ENVELOPE_HEAD = b'{"format":"' + ENVELOPE_FORMAT.encode("ascii") + b'","manifest":'


def encode_envelope(manifest: Manifest) -> bytes:
    """The bytes stored on a node: the manifest plus the SHA-256 of its canonical JSON."""
    body = canonical_bytes(manifest)
    digest = hashlib.sha256(body).hexdigest()
    # The canonical JSON of {"format", "manifest", "sha256"} (keys in that order, plain
    # ASCII strings) around the manifest's own canonical bytes: JCS of the envelope,
    # without canonicalising the manifest a second time.
    return b"".join((_ENVELOPE_HEAD, body, b',"sha256":"', digest.encode("ascii"), b'"}'))


def decode_envelope(blob: bytes) -> Manifest:
    """Parse a stored manifest copy; ManifestError if damaged, forged or invalid."""
    try:
        envelope = json.loads(blob)
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"manifest copy is not JSON ({e}); perhaps truncated") from e
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        raise ManifestError("manifest copy is not a manifest envelope")
    claimed = envelope.get("sha256")
    body = envelope.get("manifest")
    try:
        calculated = hashlib.sha256(canonical_json(body)).hexdigest()
    except Exception as e:  # JCS rejects values JSON allows (huge ints, NaN)
        raise ManifestError(f"manifest copy cannot be canonicalised: {e}") from e
    if claimed != calculated:
        raise ManifestError(
            f"manifest copy digest mismatch: recorded {claimed!r}, calculated {calculated}"
        )
    return from_dict(body)
