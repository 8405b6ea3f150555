"""Sealing throughput on one core (docs/sealing.md), so we know it does not cap uploads.

Seals ``--mib`` MiB of random plaintext fed in 256 KiB chunks (the HTTP layer's read
size) through the record sealer, then opens every record again, all in this thread, and
prints ``name=value`` lines:

    seal_MBps=...            AES-256-GCM sealing (64 KiB records), MB/s (10^6 bytes)
    unseal_MBps=...          opening and authenticating the same records, MB/s
    seal_and_hash_MBps=...   sealing plus the plaintext SHA-256 a sealed upload also
                             computes (the extra work per byte of a sealed upload)
    unseal_range_MBps=...    the async range reader over the whole document (in-memory
                             source, inline: the per-record bookkeeping included)
    loop_gap_ms_inline=...   longest gap between 1 ms ticks of another task while 64 MiB
                             arrive in 4 MiB chunks sealed on the event loop
    loop_gap_ms_offload=...  the same with the chunks sealed in the worker pool (what
                             seal_stream does for chunks >= OFFLOAD_THRESHOLD)

The best of ``--repeat`` runs is reported. Run by hand:
``.venv/bin/python benchmarks/sealing_bench.py [--mib 256] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notary.sealing import (
    DEFAULT_RECORD_SIZE,
    Keyring,
    MasterKey,
    RecordOpener,
    RecordSealer,
    SealParams,
    seal_stream,
    unseal_range,
)
from storage.workers import run_cpu, tune_allocator

CHUNK = 256 * 1024


def best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tune_allocator()  # as the service does (storage/workers.py)
    size = args.mib * 1024 * 1024
    chunk = os.urandom(CHUNK)
    ring = Keyring((MasterKey.from_bytes(os.urandom(32)),))
    sealed_parts: list[bytes] = []
    last: list[SealParams] = []

    def seal(hash_too: bool, keep: bool = False) -> float:
        # Sealed output is dropped as it comes (as storage does once a segment is
        # written), except in the untimed run that keeps it for the unseal benchmarks.
        sealer = RecordSealer.create("bench", ring, os.urandom)
        hasher = hashlib.sha256()
        sealed_parts.clear()
        start = time.perf_counter()
        for _ in range(size // CHUNK):
            if hash_too:
                hasher.update(chunk)
            out = sealer.update(chunk)
            if keep:
                sealed_parts.append(out)
        sealed_parts.append(sealer.finish())
        elapsed = time.perf_counter() - start
        last[:] = [sealer.params]
        return elapsed

    seal_s = best(args.repeat, lambda: seal(False))
    hash_s = best(args.repeat, lambda: seal(True))
    seal(False, keep=True)
    params = last[0]
    sealed = b"".join(sealed_parts)
    opener = RecordOpener("bench", ring, params)
    stride = DEFAULT_RECORD_SIZE + 16

    def unseal() -> float:
        view = memoryview(sealed)
        start = time.perf_counter()
        for i in range(params.records):
            opener.open(i, view[i * stride : i * stride + opener.record_length(i)])
        return time.perf_counter() - start

    unseal_s = best(args.repeat, unseal)

    async def read(lo: int, hi: int) -> AsyncIterator[bytes]:
        for i in range(lo, hi, 8 * 1024 * 1024):  # storage yields 8 MiB segments
            yield sealed[i : min(i + 8 * 1024 * 1024, hi)]

    async def ranged() -> float:
        start = time.perf_counter()
        n = 0
        async for piece in unseal_range(read, opener, 0, size, threshold=1 << 62):
            n += len(piece)
        assert n == size
        return time.perf_counter() - start

    range_s = min(asyncio.run(ranged()) for _ in range(args.repeat))
    big = os.urandom(4 * 1024 * 1024)

    async def loop_gap(offload: bool) -> float:
        async def source() -> AsyncIterator[bytes]:
            for _ in range(16):
                await asyncio.sleep(0)  # as a socket read would
                yield big

        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        sealer = RecordSealer.create("bench", ring, os.urandom)
        threshold = 0 if offload else 1 << 62
        async for _ in seal_stream(source(), sealer, offload=run_cpu, threshold=threshold):
            pass
        done.set()
        await task
        return max(gaps) * 1000

    for name, seconds in (
        ("seal_MBps", seal_s),
        ("unseal_MBps", unseal_s),
        ("seal_and_hash_MBps", hash_s),
        ("unseal_range_MBps", range_s),
    ):
        print(f"{name}={size / seconds / 1e6:.0f}")
    print(f"loop_gap_ms_inline={asyncio.run(loop_gap(False)):.1f}")
    print(f"loop_gap_ms_offload={asyncio.run(loop_gap(True)):.1f}")


if __name__ == "__main__":
    main()
