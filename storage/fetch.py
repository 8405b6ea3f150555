"""Fetching and verifying fragments, and rebuilding a segment from any k good ones.

A fragment is good only if its node returned it, its length is the recorded
size and its SHA-256 is the recorded digest; anything else is an erasure with
a reason. Data fragments are fetched first (decoding them is a copy); a
parity fragment is fetched for each one that turns out bad. Nodes that were
unreachable earlier in the same operation are tried last, so a hung node
costs one timeout per read rather than one per segment.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from storage.codec import SegmentCodec
from storage.errors import (
    BlobNotFoundError,
    IntegrityError,
    NodeError,
    NodeUnavailableError,
)
from storage.manifest import FragmentEntry, SegmentEntry
from storage.pool import NodePool
from storage.workers import run_cpu_on


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (run in a worker thread: hashlib releases the GIL)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Fetched:
    """The outcome of fetching one fragment: its bytes, or why it is an erasure."""

    entry: FragmentEntry
    data: bytes | None
    fault: str | None
    unavailable: bool = False


async def fetch_fragment(pool: NodePool, entry: FragmentEntry) -> Fetched:
    """Fetch one fragment and verify its size and digest."""
    try:
        data = await pool.get(entry.node, entry.key)
    except BlobNotFoundError:
        return Fetched(entry, None, "fragment missing")
    except NodeUnavailableError as e:
        return Fetched(entry, None, f"node unavailable ({e.message})", unavailable=True)
    except NodeError as e:
        return Fetched(entry, None, f"{type(e).__name__}: {e.message}")
    if len(data) != entry.size:
        return Fetched(
            entry, None, f"{len(data)} bytes instead of {entry.size} (truncated or replaced)"
        )
    if await run_cpu_on(len(data), sha256_hex, data) != entry.sha256:
        return Fetched(entry, None, "SHA-256 mismatch (corrupt fragment)")
    return Fetched(entry, data, None)


@dataclass
class Collected:
    """Good fragments of one segment and the faults met while collecting them."""

    good: dict[int, bytes]
    faults: dict[int, Fetched]


async def collect_fragments(
    pool: NodePool,
    segment: SegmentEntry,
    need: int,
    *,
    suspects: Collection[str] = (),
    known_bad: Mapping[int, Fetched] | None = None,
    known_good: Mapping[int, bytes] | None = None,
) -> Collected:
    """Fetch fragments of ``segment`` until ``need`` are good or none are left.

    Data fragments first, then parity; fragments on ``suspects`` last.
    ``known_good``/``known_bad`` are outcomes already established (not refetched).
    """
    good = dict(known_good or {})
    faults = dict(known_bad or {})
    order = sorted(
        (f for f in segment.fragments if f.index not in good and f.index not in faults),
        key=lambda f: (f.node in suspects, f.index),
    )
    pending = iter(order)
    active: set[asyncio.Task[Fetched]] = set()

    def launch(count: int) -> None:
        for _ in range(count):
            entry = next(pending, None)
            if entry is None:
                return
            active.add(asyncio.create_task(fetch_fragment(pool, entry)))

    launch(need - len(good))
    try:
        while active:
            done, _ = await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                active.discard(task)
                result = task.result()
                if result.data is None:
                    faults[result.entry.index] = result
                    launch(1)
                else:
                    good[result.entry.index] = result.data
    finally:
        for task in active:
            task.cancel()
    return Collected(good=good, faults=faults)


def decode_segment(codec: SegmentCodec, segment: SegmentEntry, good: Mapping[int, bytes]) -> bytes:
    """Decode a segment from k verified fragments and check its size and digest.

    Runs in a worker thread. Raises IntegrityError if the result does not match
    the manifest (which verified fragments cannot cause unless the manifest lies).
    """
    chosen = {i: good[i] for i in sorted(good)[: codec.k]}
    try:
        data = codec.decode(chosen)
    except Exception as e:  # pyeclib raises its own exception types
        raise IntegrityError(f"segment {segment.index}: decoding failed: {e}") from e
    if len(data) != segment.size or sha256_hex(data) != segment.sha256:
        raise IntegrityError(
            f"segment {segment.index}: rebuilt bytes do not match the recorded SHA-256"
        )
    return data
