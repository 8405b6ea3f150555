"""Small-document put benchmark: many concurrent 4 KiB puts, each durable before it returns.

Run by hand: ``.venv/bin/python benchmarks/small_put_bench.py [--clients 64] [--puts 4000]``.
A DocumentStore (k=4, m=2) over 6 packed folder nodes in a temporary directory, as the
embedded service builds them (notary/server.py ``storage_nodes``); ``--clients`` tasks
each put 4 KiB documents of fresh random ids (``new_id=True``; ``--check-existing`` makes
every put stat its manifest key first, as a caller-chosen id needs) until ``--puts``
documents are stored, after a warm-up of ``--warmup`` puts. Prints ``name=value`` lines:
``small_puts_per_s``, ``small_put_p50_ms``, ``small_put_p99_ms`` (latency of one put
under that load) and ``small_put_cpu_ms`` (CPU time of the whole process, every thread,
per put).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import DocumentStore
from storage.nodes import LocalFolderNode

DOC_BYTES = 4096


def nodes(base: Path) -> list[LocalFolderNode]:
    return [
        LocalFolderNode(f"node-{i}", base / f"node-{i}", zone=f"zone-{i}", pack=True)
        for i in range(6)
    ]


async def run(store: DocumentStore, clients: int, puts: int, new_id: bool) -> list[float]:
    """Put ``puts`` documents from ``clients`` tasks; the latency of each put, in seconds."""
    latencies: list[float] = []
    left = puts

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            body = os.urandom(DOC_BYTES)
            doc_id = os.urandom(16).hex()
            t = time.perf_counter()
            if new_id:
                await store.put(body, doc_id=doc_id, new_id=True)
            else:
                await store.put(body, doc_id=doc_id)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def bench(clients: int, puts: int, warmup: int, new_id: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="small-put-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        store = DocumentStore(nodes(base))
        await run(store, clients, warmup, new_id)
        cpu, wall = time.process_time(), time.perf_counter()
        latencies = await run(store, clients, puts, new_id)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        latencies.sort()
        print(f"small_puts_per_s={puts / wall:.0f}")
        print(f"small_put_p50_ms={percentile(latencies, 0.50) * 1e3:.1f}")
        print(f"small_put_p99_ms={percentile(latencies, 0.99) * 1e3:.1f}")
        print(f"small_put_cpu_ms={cpu / puts * 1e3:.2f}", flush=True)
        await store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--puts", type=int, default=4000)
    p.add_argument("--warmup", type=int, default=400)
    p.add_argument("--check-existing", action="store_true")
    args = p.parse_args()
    asyncio.run(bench(args.clients, args.puts, args.warmup, not args.check_existing))


if __name__ == "__main__":
    main()
