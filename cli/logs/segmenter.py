"""Cutting a byte stream of log lines into segments, by size and by age, never inside a line.

Pure: bytes in, segments out; the clock is injected. Rules (docs/log-streams.md):

* a segment ends at a line end (``\\n``) and holds at most ``segment_bytes`` bytes,
  except a single line longer than that, which is a segment of its own;
* a line longer than ``max_line_bytes`` is cut there (the one exception to "never
  split a line", so memory stays bounded whatever the input);
* ``due(now)`` cuts the complete lines buffered once the oldest of them is
  ``segment_seconds`` old (a quiet log still gets anchored);
* ``flush()`` cuts everything, a last line without ``\\n`` included (end of a file, or
  a file rotated away).
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_SEGMENT_BYTES = 1024 * 1024
DEFAULT_SEGMENT_SECONDS = 10.0
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024


class Segmenter:
    """Buffers lines and cuts segments; see the module docstring."""

    def __init__(
        self,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float],
    ) -> None:
        if segment_bytes < 1 or segment_seconds <= 0 or max_line_bytes < segment_bytes:
            raise ValueError("need segment_bytes >= 1, segment_seconds > 0, max_line >= segment")
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.max_line_bytes = max_line_bytes
        self._clock = clock
        self._buf = bytearray()
        self._opened_at = 0.0

    @property
    def buffered(self) -> int:
        """Bytes read but not yet in a segment."""
        return len(self._buf)

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        if self._buf:
            self._opened_at = self._clock()
        return out

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the segments it completes (by size)."""
        if not data:
            return []
        if not self._buf:
            self._opened_at = self._clock()
        self._buf += data
        out: list[bytes] = []
        limit = self.segment_bytes
        while len(self._buf) >= limit:
            end = self._buf.rfind(b"\n", 0, limit)
            if end >= 0:
                out.append(self._take(end + 1))
                continue
            # One line longer than a segment: it is a segment of its own.
            end = self._buf.find(b"\n", limit, self.max_line_bytes)
            if end >= 0:
                out.append(self._take(end + 1))
            elif len(self._buf) >= self.max_line_bytes:
                out.append(self._take(self.max_line_bytes))
            else:
                break
        return out

    def due(self) -> list[bytes]:
        """The complete lines buffered, as one segment, once the oldest is old enough."""
        if not self._buf or self._clock() - self._opened_at < self.segment_seconds:
            return []
        end = self._buf.rfind(b"\n")
        return [self._take(end + 1)] if end >= 0 else []

    def complete(self) -> list[bytes]:
        """The complete lines buffered, as one segment, whatever their age (on stop)."""
        end = self._buf.rfind(b"\n")
        return [self._take(end + 1)] if end >= 0 else []

    def flush(self) -> list[bytes]:
        """Everything buffered as one last segment (possibly ending without a newline)."""
        return [self._take(len(self._buf))] if self._buf else []
