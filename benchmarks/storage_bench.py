"""Storage benchmark: codec speed, put/get on 6 folder nodes, raw-write baseline, peak RSS.

Run by hand: ``.venv/bin/python benchmarks/storage_bench.py [--doc-mib 512] [--rss-gib 2]``.
Prints ``name=value`` lines. MB = 10^6 bytes. The page cache is not dropped
between the put and the gets unless ``--drop-caches`` is given and the
machine allows writing /proc/sys/vm/drop_caches (a container usually does not).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import DocumentStore
from storage.codec import SegmentCodec
from storage.manifest import decode_envelope, encode_envelope
from storage.nodes import LocalFolderNode
from storage.workers import tune_allocator

MiB = 1024 * 1024
SEGMENT = 8 * MiB
K, M = 4, 2


def emit(name: str, value: float | int | str) -> None:
    if isinstance(value, float):
        # Ratios need two decimals to be read against their targets.
        value = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    print(f"{name}={value}", flush=True)


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def encode_speed(codec: SegmentCodec, data: bytes, rounds: int) -> float:
    for _ in range(3):
        codec.encode(data)
    t = time.perf_counter()
    for _ in range(rounds):
        codec.encode(data)
    return mbps(rounds * len(data), time.perf_counter() - t)


def bench_codec() -> None:
    codec = SegmentCodec(K, M, "isa_l_rs_cauchy")
    data = os.urandom(SEGMENT)
    rounds = 40
    # glibc defaults first (fresh mmap per buffer), then as the store runs (tune_allocator).
    emit("ec_encode_MBps_default_malloc", encode_speed(codec, data, rounds))
    emit("malloc_tuned", str(tune_allocator()))
    emit("ec_encode_MBps", encode_speed(codec, data, rounds))
    fragments = codec.encode(data)
    survivors = dict(enumerate(fragments))
    del survivors[0], survivors[1]  # two data fragments lost: a real reconstruction
    assert codec.decode(survivors) == data
    t = time.perf_counter()
    for _ in range(rounds):
        codec.decode(survivors)
    emit("ec_decode_2lost_MBps", mbps(rounds * SEGMENT, time.perf_counter() - t))


async def stream(size: int, block: bytes, chunk: int = MiB) -> AsyncIterator[bytes]:
    """``size`` bytes cut from a random block, each chunk made unique by its offset."""
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        start = (sent // chunk * 7919) % (len(block) - chunk + 1)
        piece = sent.to_bytes(8, "big") + block[start + 8 : start + n]
        yield piece[:n]
        sent += n


def nodes(base: Path) -> list[LocalFolderNode]:
    return [LocalFolderNode(f"node{i}", base / f"node{i}", zone=f"zone{i % 3}") for i in range(6)]


def drop_caches(enabled: bool) -> str:
    if not enabled:
        return "not_requested"
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "dropped"
    except OSError as e:
        return f"impossible({e.strerror})"


async def consume(store: DocumentStore, manifest: object) -> int:
    total = 0
    async for chunk in store.read(manifest):  # type: ignore[arg-type]
        total += len(chunk)
    return total


def raw_baseline(base: Path, doc_size: int, block: bytes) -> float:
    """Same bytes as a put writes, plain buffered writes + fsync, same files per node."""
    segments = -(-doc_size // SEGMENT)
    frag = (SEGMENT // K) + 80
    payload = block[:frag]
    t = time.perf_counter()
    for s in range(segments):
        for node in range(K + M):
            d = base / f"node{node}" / "raw"
            d.mkdir(parents=True, exist_ok=True)
            with (d / f"{s:08d}.{node:02d}").open("wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
    return time.perf_counter() - t


async def bench_store(doc_mib: int, drop: bool) -> None:
    size = doc_mib * MiB
    block = os.urandom(64 * MiB)
    base = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    try:
        store = DocumentStore(nodes(base))
        t = time.perf_counter()
        manifest = await store.put(stream(size, block))
        put_s = time.perf_counter() - t
        emit("put_MBps", mbps(size, put_s))
        emit("page_cache", drop_caches(drop))
        t = time.perf_counter()
        assert await consume(store, manifest) == size
        get_s = time.perf_counter() - t
        emit("get_MBps", mbps(size, get_s))
        for node in [f.node for f in manifest.segments[0].fragments[:2]]:
            shutil.rmtree(base / node)  # the two nodes holding data fragments 0 and 1
        degraded = DocumentStore(nodes_existing(base))
        drop_caches(drop)
        t = time.perf_counter()
        assert await consume(degraded, manifest) == size
        deg_s = time.perf_counter() - t
        emit("get_degraded_MBps", mbps(size, deg_s))
        emit("get_degraded_vs_get", get_s / deg_s)
        raw_dir = base / "raw"
        raw_s = raw_baseline(raw_dir, size, block)
        emit("raw_write_MBps", mbps(size, raw_s))
        emit("raw_disk_MBps", mbps(size * (K + M) // K, raw_s))
        emit("put_vs_raw", raw_s / put_s)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def nodes_existing(base: Path) -> list[LocalFolderNode]:
    return [
        LocalFolderNode(f"node{i}", base / f"node{i}", zone=f"zone{i % 3}", create=False)
        for i in range(6)
    ]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def vm_hwm_mib() -> float:
    """Peak RSS of this process image alone (/proc VmHWM; Linux keeps ru_maxrss across
    execve, so a child started by a big parent reports at least the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def rss_put(base: Path, gib: int) -> None:
    store = DocumentStore(nodes(base))
    manifest = await store.put(stream(gib * 1024 * MiB, os.urandom(4 * MiB)))
    (base / "manifest.json").write_bytes(encode_envelope(manifest))
    print(json.dumps({"rss": peak_rss_mib(), "hwm": vm_hwm_mib(), "sha256": manifest.sha256}))


async def rss_get(base: Path) -> None:
    manifest = decode_envelope((base / "manifest.json").read_bytes())
    store = DocumentStore(nodes_existing(base))
    h = hashlib.sha256()
    async for chunk in store.read(manifest):
        h.update(chunk)
    assert h.hexdigest() == manifest.sha256
    print(json.dumps({"rss": peak_rss_mib(), "hwm": vm_hwm_mib()}))


def bench_rss(gib: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="storage-rss-"))
    try:
        for mode, name in (
            ("--rss-put", "peak_rss_MiB_2GiB_put"),
            ("--rss-get", "peak_rss_MiB_2GiB_get"),
        ):
            out = subprocess.run(
                [sys.executable, __file__, mode, str(base), "--rss-gib", str(gib)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            label = name if gib == 2 else name.replace("2GiB", f"{gib}GiB")
            emit(label, float(result["rss"]))
            emit(label + "_VmHWM", float(result["hwm"]))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--doc-mib", type=int, default=512)
    p.add_argument("--rss-gib", type=int, default=2)
    p.add_argument("--drop-caches", action="store_true")
    p.add_argument("--rss-put", type=Path)
    p.add_argument("--rss-get", type=Path)
    p.add_argument("--only", choices=["codec", "store", "rss"])
    a = p.parse_args()
    if a.rss_put:
        asyncio.run(rss_put(a.rss_put, a.rss_gib))
        return
    if a.rss_get:
        asyncio.run(rss_get(a.rss_get))
        return
    emit("cpus", os.cpu_count() or 0)
    emit("parent_peak_rss_MiB_before_children", peak_rss_mib())
    # RSS first, while this parent is small: Linux carries a parent's ru_maxrss into a
    # child across fork + execve, so children started later would report the parent's peak.
    if a.only in (None, "rss"):
        bench_rss(a.rss_gib)
    if a.only in (None, "codec"):
        bench_codec()
    if a.only in (None, "store"):
        asyncio.run(bench_store(a.doc_mib, a.drop_caches))


if __name__ == "__main__":
    main()
