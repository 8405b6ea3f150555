"""``notary logs verify``: prove a stream is continuous, chained and anchored, and
optionally that a local file holds exactly the anchored bytes.

The service only supplies the segments and their receipts; every conclusion rests on
offline checks against the trust file (the same checkpoint and inclusion checks as
``notary verify``), in this order for each segment, the first failure being the
**break** reported:

1. ``continuity``: its seq is the one after the previous segment's;
2. ``anchored``: it has a receipt (it is anchored);
3. ``receipt``: the receipt is well formed and of the trusted chain; its entry is a
   log_segment entry of this stream with this seq and byte range; the entry's
   commitment is the one of the receipt's salt and segment SHA-256;
4. ``chain``: the entry's ``prev`` is the previous entry's leaf hash and it starts
   where the previous one ended (notary.log_entry.link_error);
5. ``checkpoint`` and ``inclusion``: the checkpoint is signed by enough trusted
   validators and the entry is in the log it commits to;
6. ``content`` (with ``--against FILE``): the file's bytes over the segment's range hash
   to the anchored SHA-256. On a mismatch the anchored bytes are fetched to name the
   first differing byte (offset in the file and line number).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from chain.checkpoint import CheckpointReport, inspect_checkpoint
from chain.errors import ChainError, ProofError
from chain.merkle import leaf_hash, verify_inclusion
from chain.trust import TrustFile
from notary.entry import EntryError, commitment
from notary.log_entry import LogSegmentEntry, link_error, parse_log_segment_entry
from notary.receipt import Receipt, ReceiptFormatError, parse_receipt

MAX_BREAKS = 20


@dataclass(frozen=True)
class Break:
    """Where and why the stream's proof fails."""

    check: str
    seq: int | None
    offset: int | None  # stream byte offset (file offset with --against)
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "seq": self.seq, "offset": self.offset, "detail": self.detail}

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "stream"
        if self.offset is not None:
            where += f", byte {self.offset}"
        return f"{self.check} ({where}): {self.detail}"


@dataclass
class StreamReport:
    """The outcome of verifying a stream (or a window of it)."""

    stream: str
    stream_id: str | None = None
    segments: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    start: int | None = None
    end: int | None = None
    tree_size: int | None = None
    against: str | None = None
    breaks: list[Break] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.breaks and self.segments > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "stream_id": self.stream_id,
            "valid": self.valid,
            "segments": self.segments,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "start": self.start,
            "end": self.end,
            "tree_size": self.tree_size,
            "against": self.against,
            "first_break": self.breaks[0].to_json() if self.breaks else None,
            "breaks": [b.to_json() for b in self.breaks],
        }


class _Checkpoints:
    """Checkpoint notes inspected once each (a listing shares one checkpoint)."""

    def __init__(self, trust: TrustFile) -> None:
        self.trust = trust
        self._seen: dict[str, CheckpointReport | str] = {}

    def inspect(self, note: str) -> CheckpointReport | str:
        if note not in self._seen:
            try:
                self._seen[note] = inspect_checkpoint(note, self.trust)
            except ChainError as e:
                self._seen[note] = str(e)
        return self._seen[note]


def _check_receipt(
    item: dict[str, Any], stream_id: str, checkpoints: _Checkpoints
) -> tuple[Receipt | None, LogSegmentEntry | None, Break | None]:
    seq = int(item["seq"])
    raw = item.get("receipt")
    if raw is None:
        return None, None, Break("anchored", seq, item.get("start"), f"status {item.get('status')}")
    try:
        receipt = parse_receipt(json.dumps(raw))
    except ReceiptFormatError as e:
        return None, None, Break("receipt", seq, item.get("start"), str(e))
    trust = checkpoints.trust
    if receipt.chain_id != trust.chain_id:
        return (
            None,
            None,
            Break(
                "receipt", seq, None, f"chain {receipt.chain_id!r}, trust file {trust.chain_id!r}"
            ),
        )
    try:
        entry = parse_log_segment_entry(receipt.entry)
    except EntryError as e:
        return None, None, Break("receipt", seq, None, f"entry: {e}")
    want = (stream_id, seq, int(item["start"]), int(item["end"]))
    got = (entry.stream, entry.seq, entry.start, entry.end)
    if got != want:
        return (
            None,
            None,
            Break(
                "receipt",
                seq,
                entry.start,
                f"entry is for (stream, seq, start, end) {got}, not {want}",
            ),
        )
    if receipt.document_size != entry.end - entry.start:
        return (
            None,
            None,
            Break(
                "receipt", seq, entry.start, f"receipt size {receipt.document_size} != range size"
            ),
        )
    if not hmac.compare_digest(commitment(receipt.salt, receipt.document_sha256), entry.commitment):
        return (
            None,
            None,
            Break(
                "receipt",
                seq,
                entry.start,
                "the entry's commitment is not the one of the salt and digest",
            ),
        )
    report = checkpoints.inspect(receipt.checkpoint)
    if isinstance(report, str):
        return None, None, Break("checkpoint", seq, None, report)
    if report.checkpoint.size != receipt.tree_size:
        return None, None, Break("checkpoint", seq, None, "checkpoint size differs from receipt")
    if not report.committed:
        return (
            None,
            None,
            Break(
                "checkpoint",
                seq,
                None,
                f"{len(report.signers)} trusted signatures, {report.threshold} needed",
            ),
        )
    try:
        verify_inclusion(
            receipt.leaf_index,
            receipt.tree_size,
            leaf_hash(receipt.entry),
            receipt.inclusion_proof,
            report.checkpoint.root,
        )
    except ProofError as e:
        return None, None, Break("inclusion", seq, None, str(e))
    return receipt, entry, None


def check_stream(
    name: str,
    stream_id: str,
    items: Iterable[dict[str, Any]],
    trust: TrustFile,
    *,
    previous: dict[str, Any] | None = None,
    report: StreamReport | None = None,
) -> tuple[StreamReport, list[tuple[dict[str, Any], Receipt]]]:
    """Checks 1 to 5 over ``items`` (listing entries with receipts, in seq order).

    ``previous``: the listing entry just before the first item (when verifying a window
    that does not start at seq 0), so the first link is checked too.
    Returns the report and the verified (item, receipt) pairs, for the content check.
    """
    report = report or StreamReport(stream=name, stream_id=stream_id)
    checkpoints = _Checkpoints(trust)
    prev_entry: LogSegmentEntry | None = None
    expected_seq = 0
    if previous is not None:
        _, prev_entry, problem = _check_receipt(previous, stream_id, checkpoints)
        expected_seq = int(previous["seq"]) + 1
        if problem is not None:
            report.breaks.append(problem)
    verified: list[tuple[dict[str, Any], Receipt]] = []
    for item in items:
        seq = int(item["seq"])
        if report.first_seq is None:
            report.first_seq, report.start = seq, int(item["start"])
            if previous is None and seq != 0:
                expected_seq = seq  # a window: the predecessor was not supplied
        report.segments += 1
        report.last_seq, report.end = seq, int(item["end"])
        if seq != expected_seq:
            report.breaks.append(
                Break(
                    "continuity",
                    expected_seq,
                    None,
                    f"segment {expected_seq} is missing (the next one present is {seq})",
                )
            )
            prev_entry = None
        expected_seq = seq + 1
        receipt, entry, problem = _check_receipt(item, stream_id, checkpoints)
        if problem is not None:
            report.breaks.append(problem)
            prev_entry = None
        else:
            assert receipt is not None and entry is not None
            report.tree_size = receipt.tree_size
            if (prev_entry is not None or (seq == 0 and previous is None)) and (
                why := link_error(prev_entry, entry)
            ):
                report.breaks.append(Break("chain", seq, entry.start, why))
            verified.append((item, receipt))
            prev_entry = entry
        if len(report.breaks) >= MAX_BREAKS:
            break
    return report, verified


Fetch = Callable[[dict[str, Any]], bytes | None]


def check_content(
    report: StreamReport,
    verified: list[tuple[dict[str, Any], Receipt]],
    file: BinaryIO,
    file_name: str,
    *,
    base: int = 0,
    exact_end: bool,
    fetch: Fetch,
) -> None:
    """Check 6: the file (whose byte 0 is stream offset ``base``) over each segment's range.

    ``exact_end``: the file must end where the last segment ends (no unanchored bytes).
    ``fetch`` returns a segment's anchored bytes (or None) to locate a difference.
    """
    report.against = file_name
    line_count, counted_to = 0, 0  # newlines in the file before ``counted_to``

    def line_of(offset: int) -> int:
        nonlocal line_count, counted_to
        file.seek(counted_to)
        while counted_to < offset:
            chunk = file.read(min(1 << 20, offset - counted_to))
            if not chunk:
                break
            line_count += chunk.count(b"\n")
            counted_to += len(chunk)
        return line_count + 1

    for item, receipt in verified:
        start, end, seq = int(item["start"]), int(item["end"]), int(item["seq"])
        if start < base:
            continue
        file.seek(start - base)
        h, size = hashlib.sha256(), 0
        while size < end - start:
            chunk = file.read(min(1 << 20, end - start - size))
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
        if size < end - start:
            report.breaks.append(
                Break(
                    "content",
                    seq,
                    start - base + size,
                    f"{file_name} ends at byte {start - base + size}; segment {seq} goes on to "
                    f"stream byte {end}",
                )
            )
            return
        if hmac.compare_digest(h.digest(), receipt.document_sha256):
            continue
        anchored = fetch(item)
        if anchored is None or hashlib.sha256(anchored).digest() != receipt.document_sha256:
            report.breaks.append(
                Break(
                    "content",
                    seq,
                    start - base,
                    f"{file_name} bytes {start - base}..{end - base} differ from segment {seq} "
                    "(the anchored bytes could not be fetched to locate the difference)",
                )
            )
            return
        file.seek(start - base)
        mine = file.read(end - start)
        i = next(k for k in range(len(mine)) if mine[k] != anchored[k])
        offset = start - base + i
        report.breaks.append(
            Break(
                "content",
                seq,
                offset,
                f"{file_name} differs from what was anchored at byte {offset} (line "
                f"{line_of(offset)}): anchored {anchored[i : i + 1]!r}, file has "
                f"{mine[i : i + 1]!r} (segment {seq}, bytes {start - base}..{end - base})",
            )
        )
        return
    if exact_end and report.end is not None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
        if size > report.end - base:
            report.breaks.append(
                Break(
                    "content",
                    None,
                    report.end - base,
                    f"{file_name} has {size - (report.end - base)} bytes after byte "
                    f"{report.end - base} that were not anchored (yet)",
                )
            )


def open_against(path: Path) -> BinaryIO:
    """Open the file to compare (OSError propagates for the CLI to report)."""
    return path.open("rb")
