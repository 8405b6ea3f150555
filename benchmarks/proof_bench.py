"""Proof latency of the persisted Merkle log at 10 million entries (issue 3, proof_ms_10M).

Builds a MerkleLog of ``--entries`` entries (32-byte commitment + ~100 bytes of metadata,
~130 bytes each) in a temporary directory through the ordinary ``append`` path in large
batches, then times ``--queries`` random inclusion and consistency proofs against the
full tree and prints ``name=value`` lines:

    proof_build_s_10M=...              wall time of the build
    proof_ms_10M_inclusion=...         median ms per inclusion proof (p99 alongside)
    proof_ms_10M_consistency=...       median ms per consistency proof
    proof_ms_10M_leaf_index=...        median ms per leaf-hash lookup (proof by entry hash)

Every timed proof is verified afterwards (untimed) against the log's root. Run by hand:
``.venv/bin/python benchmarks/proof_bench.py [--entries N] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain import merkle
from chain.log import MerkleLog


def make_batch(rng: random.Random, start: int, count: int) -> list[bytes]:
    commitments = rng.randbytes(32 * count)
    out = []
    for i in range(count):
        meta = (
            b'{"v":1,"type":"document","seq":%d,"org":"bank-0042","ts":"2026-11-21T04:00:00Z"}'
            % (start + i)
        )
        out.append(commitments[32 * i : 32 * i + 32] + meta.ljust(100, b" "))
    return out


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else str(n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="keep the log here (default: a temp dir); an existing log there is reused",
    )
    ap.add_argument("--seed", type=int, default=9162)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    n = args.entries
    tag = label(n)

    directory = args.dir or Path(tempfile.mkdtemp(prefix="proof_bench_"))
    try:
        log = MerkleLog.open(directory / "log")
        initial = log.size
        start = time.perf_counter()
        while log.size < n:
            k = min(args.batch, n - log.size)
            log.append(make_batch(rng, log.size, k))
            if log.size % (args.batch * 10) == 0:
                print(f"# built {log.size} in {time.perf_counter() - start:.1f}s", flush=True)
        build_s = time.perf_counter() - start
        if initial:
            print(f"# reused a log of {initial} entries; proofs are against its first {n}")
        print(f"proof_build_s_{tag}={build_s:.1f}", flush=True)

        size, root = n, log.root_at(n)
        incl_ms, cons_ms, lookup_ms = [], [], []
        checks = []
        for _ in range(args.queries):
            i = rng.randrange(size)
            t0 = time.perf_counter()
            proof = log.inclusion_proof(i, size)
            incl_ms.append((time.perf_counter() - t0) * 1000)
            old = rng.randrange(1, size)
            t0 = time.perf_counter()
            cproof = log.consistency_proof(old, size)
            cons_ms.append((time.perf_counter() - t0) * 1000)
            leaf = log.leaf_hash(i)
            t0 = time.perf_counter()
            found = log.leaf_index(leaf)
            lookup_ms.append((time.perf_counter() - t0) * 1000)
            checks.append((i, leaf, proof, old, cproof, found))
        for i, leaf, proof, old, cproof, found in checks:
            assert found is not None and log.leaf_hash(found) == leaf
            merkle.verify_inclusion(i, size, leaf, proof, root)
            merkle.verify_consistency(old, size, log.root_at(old), root, cproof)

        def report(name: str, samples: list[float]) -> None:
            p99 = statistics.quantiles(samples, n=100)[98]
            print(f"proof_ms_{tag}_{name}={statistics.median(samples):.3f}")
            print(f"proof_ms_{tag}_{name}_p99={p99:.3f}")

        report("inclusion", incl_ms)
        report("consistency", cons_ms)
        report("leaf_index", lookup_ms)
        disk = sum(f.stat().st_size for f in (directory / "log").iterdir())
        print(f"proof_disk_mb_{tag}={disk / 1e6:.0f}")
        log.close()
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
