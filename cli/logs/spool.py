"""The spool: segments cut but not yet acknowledged by the service, on disk, in order.

Every segment goes through the spool before it is sent, so a pusher killed at any
instant loses nothing it has read: what is in the spool is sent again (the service
answers an identical resend with the segment it already has), what is not was not
yet marked read in the state file.

A spool file (``<first seq, 20 digits>.spool``) holds consecutive segments: the line
``notary-logs-spool 1``, then per segment one JSON header line (seq, start, end,
sha256, prev_sha256, cut_at, cursor) and its ``end - start`` bytes. Files are written
whole through a temporary file, fsync and rename; a file is deleted once every segment
in it is acknowledged. The spool is bounded (``limit`` bytes): see cli.logs.push.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cli.logs.follower import Cursor
from cli.logs.state import fsync_dir

MAGIC = b"notary-logs-spool 1\n"
_MAX_HEADER = 4096


class SpoolError(Exception):
    """A spool file that cannot be read back."""


@dataclass(frozen=True)
class Record:
    """One spooled segment's header."""

    seq: int
    start: int
    end: int
    sha256: str
    prev_sha256: str
    cut_at: str
    cursor: Cursor | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "start": self.start,
            "end": self.end,
            "sha256": self.sha256,
            "prev_sha256": self.prev_sha256,
            "cut_at": self.cut_at,
            "cursor": self.cursor.to_json() if self.cursor else None,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls(
            seq=int(obj["seq"]),
            start=int(obj["start"]),
            end=int(obj["end"]),
            sha256=str(obj["sha256"]),
            prev_sha256=str(obj["prev_sha256"]),
            cut_at=str(obj["cut_at"]),
            cursor=Cursor.from_json(obj["cursor"]) if obj.get("cursor") else None,
        )


def _read_records(f: BinaryIO, where: Path) -> Iterator[tuple[Record, bytes]]:
    if f.read(len(MAGIC)) != MAGIC:
        raise SpoolError(f"{where} is not a spool file")
    while True:
        line = f.readline(_MAX_HEADER)
        if not line:
            return
        try:
            record = Record.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as e:
            raise SpoolError(f"{where}: damaged segment header: {e}") from None
        data = f.read(record.end - record.start)
        if len(data) != record.end - record.start:
            raise SpoolError(f"{where}: segment {record.seq} is truncated")
        yield record, data


class Spool:
    """The spool folder of one stream (thread-safe size accounting)."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(".*.tmp"):  # a write interrupted before its rename
            leftover.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._size = sum(p.stat().st_size for p in self.files())

    def files(self) -> list[Path]:
        """The spool files, oldest first."""
        return sorted(self.folder.glob("*.spool"))

    @property
    def size(self) -> int:
        """Bytes in the spool."""
        with self._lock:
            return self._size

    def write(self, segments: Sequence[tuple[Record, bytes]]) -> Path:
        """Write ``segments`` (consecutive, non-empty list) as one spool file, durably."""
        path = self.folder / f"{segments[0][0].seq:020d}.spool"
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                parts = [MAGIC]
                for record, data in segments:
                    parts.append(json.dumps(record.to_json(), separators=(",", ":")).encode())
                    parts.append(b"\n")
                    parts.append(data)
                f.writelines(parts)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(self.folder)
        with self._lock:
            self._size += size
        return path

    def read(self, path: Path) -> Iterator[tuple[Record, bytes]]:
        """The segments of one spool file, in order."""
        with path.open("rb") as f:
            yield from _read_records(f, path)

    def last(self) -> Record | None:
        """The newest spooled segment's header, or None when the spool is empty."""
        files = self.files()
        if not files:
            return None
        last = None
        for record, _ in self.read(files[-1]):
            last = record
        return last

    def remove(self, path: Path) -> None:
        """Delete a spool file whose segments are all acknowledged."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        path.unlink(missing_ok=True)
        with self._lock:
            self._size -= size
