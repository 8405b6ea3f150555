"""The ``log_segment`` ledger entry: one anchored segment of a broker's log stream.

A log stream is a hash chain of segments. Segment ``seq`` of a stream is anchored as
the RFC 8785 canonical JSON of::

    {"commitment": <64 hex>, "end": <int>, "prev": <64 hex>, "seq": <int>,
     "start": <int>, "stream": <32 hex>, "type": "log_segment", "v": 1}

* ``commitment`` = SHA-256(b"notary/commit/v1" || salt || segment SHA-256), exactly as
  for a document entry (notary.entry): the ledger never shows the segment's digest.
* ``stream``: the stream's opaque id (16 random bytes, hex), never its name.
* ``seq``: 0, 1, 2, ... without gaps.
* ``start``, ``end``: the segment's byte range ``[start, end)`` in the stream (the
  concatenation of every byte read from the source, across rotations); ``start`` of
  segment 0 is 0 and ``start`` of segment n is ``end`` of segment n-1.
* ``prev``: the RFC 9162 leaf hash, SHA-256(0x00 || entry bytes), of the entry of
  segment ``seq - 1``; 64 zeros for segment 0. Linking entries rather than segment
  digests makes the ledger a chain without publishing a guessable digest (a log line
  of a quiet hour is easy to guess): the leaf hash is already public and commits, through
  the previous entry's own ``commitment`` and ``prev``, to every earlier segment.

Docs: docs/log-streams.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chain.merkle import leaf_hash
from notary.entry import ENTRY_VERSION, EntryError, commitment
from storage.canonical import canonical_json

ENTRY_TYPE = "log_segment"
GENESIS_PREV = bytes(32)
MAX_OFFSET = 2**63 - 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_MEMBERS = {"commitment", "end", "prev", "seq", "start", "stream", "type", "v"}


@dataclass(frozen=True)
class LogSegmentEntry:
    """The anchored entry of one log segment; see the module docstring."""

    stream: str
    seq: int
    start: int
    end: int
    prev: bytes
    commitment: bytes

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) JSON bytes: the Merkle leaf."""
        return canonical_json(
            {
                "commitment": self.commitment.hex(),
                "end": self.end,
                "prev": self.prev.hex(),
                "seq": self.seq,
                "start": self.start,
                "stream": self.stream,
                "type": ENTRY_TYPE,
                "v": ENTRY_VERSION,
            }
        )

    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || entry bytes): what the next segment's ``prev`` holds."""
        return leaf_hash(self.to_bytes())


def log_segment_entry(
    *, stream: str, seq: int, start: int, end: int, prev: bytes, salt: bytes, sha256: bytes
) -> LogSegmentEntry:
    """The entry of segment ``seq`` of ``stream`` whose content has SHA-256 ``sha256``.

    Raises EntryError for values outside the format (see the module docstring).
    """
    entry = LogSegmentEntry(stream, seq, start, end, prev, commitment(salt, sha256))
    _validate(entry)
    return entry


def _validate(e: LogSegmentEntry) -> None:
    if not _HEX32.fullmatch(e.stream):
        raise EntryError("stream must be 32 lowercase hex digits")
    if not 0 <= e.seq <= MAX_OFFSET:
        raise EntryError("seq must be a non-negative integer")
    if not 0 <= e.start <= e.end <= MAX_OFFSET:
        raise EntryError("need 0 <= start <= end")
    if len(e.prev) != 32 or len(e.commitment) != 32:
        raise EntryError("prev and commitment must be 32 bytes each")
    if e.seq == 0 and (e.prev != GENESIS_PREV or e.start != 0):
        raise EntryError("segment 0 must start at 0 with prev = 64 zeros")


def _uint(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFSET:
        raise EntryError(f"{key} must be a non-negative integer")
    return value


def _hex64(obj: dict[str, Any], key: str) -> bytes:
    value = obj[key]
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise EntryError(f"{key} must be 64 lowercase hex digits")
    return bytes.fromhex(value)


def parse_log_segment_entry(data: bytes) -> LogSegmentEntry:
    """Parse entry bytes strictly: version 1, type log_segment, exactly the members of
    the format, each in range, in canonical (RFC 8785) form. Raises EntryError."""
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EntryError(f"entry is not UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict) or set(obj) != _MEMBERS:
        raise EntryError("a log_segment entry holds exactly " + ", ".join(sorted(_MEMBERS)))
    if obj["v"] != ENTRY_VERSION or obj["type"] != ENTRY_TYPE:
        raise EntryError(f"unsupported entry version {obj['v']!r} or type {obj['type']!r}")
    if not isinstance(obj["stream"], str):
        raise EntryError("stream must be 32 lowercase hex digits")
    entry = LogSegmentEntry(
        stream=obj["stream"],
        seq=_uint(obj, "seq"),
        start=_uint(obj, "start"),
        end=_uint(obj, "end"),
        prev=_hex64(obj, "prev"),
        commitment=_hex64(obj, "commitment"),
    )
    _validate(entry)
    if entry.to_bytes() != data:
        raise EntryError("entry is not in canonical (RFC 8785) form")
    return entry


def link_error(previous: LogSegmentEntry | None, entry: LogSegmentEntry) -> str | None:
    """Why ``entry`` does not follow ``previous`` in one stream (None when it does).

    ``previous`` None means ``entry`` must be the stream's first segment.
    """
    if previous is None:
        if entry.seq != 0 or entry.prev != GENESIS_PREV or entry.start != 0:
            return "the first segment must be seq 0, start at 0, with prev = 64 zeros"
        return None
    if entry.stream != previous.stream:
        return f"stream {entry.stream} differs from the previous segment's {previous.stream}"
    if entry.seq != previous.seq + 1:
        return f"seq {entry.seq} does not follow seq {previous.seq}"
    if entry.prev != previous.leaf_hash():
        return (
            f"prev {entry.prev.hex()} is not the leaf hash {previous.leaf_hash().hex()} "
            f"of segment {previous.seq}"
        )
    if entry.start != previous.end:
        return f"starts at byte {entry.start}, segment {previous.seq} ended at {previous.end}"
    return None
