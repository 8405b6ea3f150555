"""Cutting a document source into fixed-size segments without holding it whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import BinaryIO

Source = bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes] | Iterable[bytes]


async def iter_segments(source: Source, segment_size: int) -> AsyncGenerator[bytes, None]:
    """Yield the source's bytes as segments of ``segment_size`` (the last may be shorter).

    An empty source yields nothing. File objects are read in a worker thread;
    iterables of chunks are re-cut, so chunk sizes do not matter. Precondition:
    ``segment_size`` > 0.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), segment_size):
            yield bytes(view[start : start + segment_size])
        return
    if hasattr(source, "read"):
        reader: BinaryIO = source  # type: ignore[assignment]
        while True:
            segment = await asyncio.to_thread(_read_full, reader, segment_size)
            if segment:
                yield segment
            if len(segment) < segment_size:
                return
    buffer = bytearray()
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            buffer += chunk
            while len(buffer) >= segment_size:
                yield bytes(buffer[:segment_size])
                del buffer[:segment_size]
    else:
        for chunk in source:
            buffer += chunk
            while len(buffer) >= segment_size:
                yield bytes(buffer[:segment_size])
                del buffer[:segment_size]
    if buffer:
        yield bytes(buffer)


def _read_full(reader: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes unless EOF comes first (raw streams may return short reads)."""
    first = reader.read(size)
    if first is None:
        raise BlockingIOError("non-blocking source returned no data")
    if len(first) == size or not first:
        return bytes(first)
    parts = [first]
    got = len(first)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
