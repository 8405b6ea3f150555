"""Throughput and commit latency of n validator processes on 127.0.0.1 (issue 3, section 6).

For each n in ``--sizes`` (default 4, 7, 10): start n ``notary node run`` processes with
fresh keys, then

1. saturation: ``--clients`` concurrent clients each submit batches of ``--batch``
   entries (32-byte commitment + ~100 bytes of metadata) round-robin to the validators,
   retrying when busy; committed entries per second are measured from the tree size of a
   validator over ``--seconds`` after a warm-up -> ``anchor_tps_n{n}``;
2. half load: batches submitted open-loop at half that rate; for every batch the time
   from submission until its last entry is reported committed (long-poll
   ``GET /v1/entries/{hash}?wait=1``) -> ``p50_commit_ms_n{n}``, ``p99_commit_ms_n{n}``.

Finally ``benchmarks/proof_bench.py`` runs at 10 million entries -> ``proof_ms_10M``
(the slower of the median inclusion and consistency proof times; skip with
``--skip-proof``). Run by hand: ``.venv/bin/python benchmarks/chain_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from chain.keys import Signer  # noqa: E402
from chain.node.client import LedgerClient  # noqa: E402
from chain.node.config import ConsensusTuning, Limits, NodeConfig, render_config  # noqa: E402
from chain.node.wire import encode_batch  # noqa: E402
from chain.trust import Validator, make_genesis  # noqa: E402


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_cluster(
    root: Path, n: int, tuning: ConsensusTuning, mempool: int
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    ports = free_ports(n)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    signers = [Signer.from_seed(f"v{i}", hashlib.sha256(b"bench%d" % i).digest()) for i in range(n)]
    trust = make_genesis(
        "bench.chain", [Validator(s.name, s.public_key, urls[i]) for i, s in enumerate(signers)]
    )
    trust.save(root / "trust.json")
    procs = []
    for i, s in enumerate(signers):
        s.save(root / f"{s.name}.key")
        cfg = NodeConfig(
            name=s.name,
            role="validator",
            trust_file=root / "trust.json",
            data_dir=root / s.name,
            key_file=root / f"{s.name}.key",
            port=ports[i],
            consensus=tuning,
            limits=Limits(mempool_entries=mempool, max_request_bytes=64 << 20),
        )
        (root / f"{s.name}.toml").write_text(render_config(cfg))
        log = (root / f"{s.name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli.main",
                    "node",
                    "run",
                    "--config",
                    str(root / f"{s.name}.toml"),
                    "--log-level",
                    "WARNING",
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return urls, procs


async def wait_up(urls: list[str], deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as s:
        for url in urls:
            while True:
                try:
                    async with s.get(url + "/v1/status") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > end:
                    raise SystemExit(f"{url} did not come up")
                await asyncio.sleep(0.1)


def make_entries(rng: random.Random, count: int, seq: int) -> list[bytes]:
    commitments = rng.randbytes(32 * count)
    return [
        commitments[32 * i : 32 * i + 32]
        + (b'{"v":1,"type":"document","seq":%d,"org":"bank-0042"}' % (seq + i)).ljust(100)
        for i in range(count)
    ]


async def tree_size(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/v1/status") as r:
        return int((await r.json())["tree_size"])


async def saturation(
    urls: list[str], clients: int, batch: int, warmup: float, seconds: float
) -> float:
    stop = False
    rng = random.Random(1)
    pre = [make_entries(rng, batch, i * batch) for i in range(4)]

    async def client(k: int) -> None:
        seq = k << 40
        async with aiohttp.ClientSession() as s:
            i = k
            while not stop:
                url = urls[i % len(urls)]
                i += 1
                seq += batch
                # Unique entries: the last 8 bytes carry a sequence number.
                entries = [e[:-8] + (seq + j).to_bytes(8, "big") for j, e in enumerate(pre[i % 4])]
                try:
                    async with s.post(
                        url + "/v1/entries",
                        data=encode_batch(entries),
                        headers={"Content-Type": "application/octet-stream"},
                    ) as r:
                        await r.read()
                        if r.status == 503:
                            await asyncio.sleep(0.05)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    async with aiohttp.ClientSession() as s:
        await asyncio.sleep(warmup)
        t0, s0 = time.monotonic(), await tree_size(s, urls[0])
        await asyncio.sleep(seconds)
        t1, s1 = time.monotonic(), await tree_size(s, urls[0])
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return (s1 - s0) / (t1 - t0)


async def latency(urls: list[str], rate: float, batch: int, seconds: float) -> list[float]:
    rng = random.Random(2)
    interval = batch / rate
    results: list[float] = []
    # One client per validator, each preferring its own (failing over to the others).
    clients = [LedgerClient(urls[k:] + urls[:k], busy_retries=50) for k in range(len(urls))]

    async def one(k: int) -> None:
        seq = (7 << 40) + k * batch
        entries = [
            e[:-8] + (seq + j).to_bytes(8, "big")
            for j, e in enumerate(make_entries(rng, batch, seq))
        ]
        client = clients[k % len(clients)]
        t0 = time.monotonic()
        r = await client.submit(entries)
        await client.wait_committed(r.entry_hashes[-1], timeout=120)
        results.append((time.monotonic() - t0) * 1000)

    try:
        tasks = []
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            tasks.append(asyncio.create_task(one(k)))
            k += 1
            await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))
        done = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [d for d in done if isinstance(d, BaseException)]
        if failed:
            print(f"# {len(failed)} latency batches failed: {failed[0]!r}", flush=True)
    finally:
        for c in clients:
            await c.close()
    return results


async def bench_n(n: int, args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"chain_bench_n{n}_"))
    tuning = ConsensusTuning(
        batch_entries=args.block,
        batch_delay_ms=args.delay_ms,
        view_timeout_ms=2000,
    )
    urls, procs = start_cluster(root, n, tuning, args.mempool)
    try:
        await wait_up(urls)
        tps = await saturation(urls, args.clients, args.batch, args.warmup, args.seconds)
        print(f"anchor_tps_n{n}={tps:.0f}", flush=True)
        # Let the backlog drain before measuring latency.
        async with aiohttp.ClientSession() as s:
            end = time.monotonic() + 180
            while time.monotonic() < end:
                st = [await (await s.get(u + "/v1/status")).json() for u in urls]
                if all(x["mempool_entries"] == 0 for x in st):
                    break
                await asyncio.sleep(0.2)
        lat = await latency(urls, max(tps / 2, 100.0), args.latency_batch, args.seconds)
        if len(lat) >= 2:
            q = statistics.quantiles(lat, n=100)
            print(f"p50_commit_ms_n{n}={statistics.median(lat):.0f}", flush=True)
            print(f"p99_commit_ms_n{n}={q[98]:.0f}", flush=True)
        else:
            print(f"# n={n}: too few latency samples ({len(lat)})", flush=True)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"# kept {root}")


def proof_bench(entries: int) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "proof_bench.py"), "--entries", str(entries)],
        capture_output=True,
        text=True,
        check=True,
    )
    values = dict(
        line.split("=", 1)
        for line in out.stdout.splitlines()
        if "=" in line and not line.startswith("#")
    )
    tag = f"{entries // 1_000_000}M" if entries % 1_000_000 == 0 else str(entries)
    for k, v in values.items():
        print(f"# {k}={v}")
    worst = max(
        float(values[f"proof_ms_{tag}_inclusion"]), float(values[f"proof_ms_{tag}_consistency"])
    )
    print(f"proof_ms_{tag}={worst:.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,7,10")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2000, help="entries per submission (saturation)")
    ap.add_argument(
        "--latency-batch", type=int, default=100, help="entries per submission (latency)"
    )
    ap.add_argument("--block", type=int, default=5000, help="entries per block")
    ap.add_argument("--delay-ms", type=int, default=50, help="leader batch delay")
    ap.add_argument("--mempool", type=int, default=40_000, help="mempool entries per validator")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--proof-entries", type=int, default=10_000_000)
    ap.add_argument("--skip-proof", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args(argv)
    for n in (int(x) for x in args.sizes.split(",")):
        asyncio.run(bench_n(n, args))
    if not args.skip_proof:
        proof_bench(args.proof_entries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
