"""End-to-end throughput of the notary service over HTTP (issue 4, section 7).

Starts ``notary serve`` on ``make run``'s embedded configuration (six folder nodes,
SQLite, four validators in a child process) in a temporary data directory, then measures:

- ``small_docs_per_s``: ``--docs`` (10,000) documents of 4 KiB uploaded with
  ``wait=true`` by ``--clients`` (64) concurrent clients, each on its own keep-alive
  connection; every answer must be a 201 carrying a receipt (parsed as JSON).
  ``p50_receipt_ms`` / ``p99_receipt_ms``: per-upload latency until the receipt is in
  hand. The load generator runs on the same cores as the service, so it is a minimal
  HTTP/1.1 client (``_Connection``, ~0.07 ms of CPU per upload against ~0.22 for
  aiohttp's client, which took a tenth of the machine at 1,000 uploads a second).
  ``server_cpu_ms_per_doc`` / ``client_cpu_ms_per_doc``: CPU time per upload of the
  service (with its validators' process) and of this process.
- ``large_MBps``: ``--large`` (16) documents of 64 MiB, 4 at a time, with ``wait=true``.
- ``verify_per_s``: offline receipt verifications per second on one core (in this
  process, on receipts from the first phase).
- ``receipt_bytes``: the size of a receipt as the API serves it.

Run by hand: ``.venv/bin/python benchmarks/service_bench.py`` (``--docs 2000`` for a
quicker look). Every document is durable when acknowledged: storage fsyncs each
fragment and manifest before the upload is answered.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
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

from chain.trust import TrustFile  # noqa: E402
from notary.receipt import parse_receipt  # noqa: E402
from notary.verify import DocumentDigest, verify_receipt  # noqa: E402

MiB = 1024 * 1024
NOTARY = str(Path(sys.executable).with_name("notary"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTARY_DATA_DIR": str(data_dir), "NOTARY_SERVER_PORT": str(port)}
    subprocess.run([NOTARY, "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (data_dir / "serve.log").open("wb")
    return subprocess.Popen([NOTARY, "serve"], env=env, stdout=log, stderr=log)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"notary serve exited with {proc.returncode}")
            try:
                async with http.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("notary serve did not become ready")


class _Connection:
    """A minimal HTTP/1.1 keep-alive client for the small-document phase: the load
    generator shares the machine's cores with the service, and aiohttp's client spent
    ~0.2 ms of CPU per request; this spends a fraction of that. It handles exactly what
    the service answers (a status line, headers, a Content-Length body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> _Connection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, target: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (target.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def small_docs(url: str, docs: int, clients: int) -> tuple[float, list[float], list[dict]]:
    latencies: list[float] = []
    receipts: list[dict] = []
    next_doc = 0
    target = "/v1/documents?kind=filing&wait=true"

    async def client(conn: _Connection) -> None:
        nonlocal next_doc
        while next_doc < docs:
            i = next_doc
            next_doc += 1
            body = i.to_bytes(8, "big") + os.urandom(4096 - 8)
            t0 = time.perf_counter()
            status, payload = await conn.post(target, body)
            answer = json.loads(payload)  # the receipt is read as a client would
            if status != 201:
                raise SystemExit(f"upload {i}: {status} {answer}")
            latencies.append((time.perf_counter() - t0) * 1000)
            if len(receipts) < 200:
                receipts.append({"sha256": hashlib.sha256(body).hexdigest(), **answer})

    connections = [await _Connection.open(url) for _ in range(clients)]
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for c in connections))
        elapsed = time.perf_counter() - t0
    finally:
        for c in connections:
            c.close()
    return docs / elapsed, latencies, receipts


async def large_docs(url: str, count: int, size: int, parallel: int) -> float:
    block = os.urandom(MiB)

    async def body(i: int):  # type: ignore[no-untyped-def]
        yield i.to_bytes(8, "big")
        for _ in range(size // MiB):
            yield block
        yield b"x" * (size % MiB - 8 if size % MiB >= 8 else 0)

    sem = asyncio.Semaphore(parallel)
    timeout = aiohttp.ClientTimeout(total=1800)

    async def one(http: aiohttp.ClientSession, i: int) -> None:
        async with (
            sem,
            http.post(
                f"{url}/v1/documents",
                params={"kind": "filing", "wait": "true", "timeout": "600"},
                data=body(i),
                headers={"Content-Type": "application/octet-stream"},
            ) as r,
        ):
            if r.status != 201:
                raise SystemExit(f"large upload {i}: {r.status} {await r.text()}")

    async with aiohttp.ClientSession(timeout=timeout) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(http, i) for i in range(count)))
        elapsed = time.perf_counter() - t0
    return count * (size + 8) / MiB / elapsed


def verify_rate(samples: list[dict], trust: TrustFile, seconds: float = 3.0) -> float:
    parsed = [
        (DocumentDigest(bytes.fromhex(s["sha256"])), parse_receipt(json.dumps(s["receipt"])))
        for s in samples
    ]
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for digest, receipt in parsed:
            verdict = verify_receipt(digest, receipt, trust)
            if not verdict.valid:
                raise SystemExit(f"a receipt did not verify: {verdict}")
            done += 1
    return done / (time.perf_counter() - t0)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, its threads and its child processes (the
    embedded validators run in one), from Linux's /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or its child
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_service(data_dir, port)
    try:
        await wait_ready(url, proc)
        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        rate, latencies, samples = await small_docs(url, args.docs, args.clients)
        server_cpu = cpu_seconds(proc.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        print(f"small_docs_per_s={rate:.0f}", flush=True)
        print(f"p50_receipt_ms={statistics.median(latencies):.0f}", flush=True)
        print(f"p99_receipt_ms={percentile(latencies, 0.99):.0f}", flush=True)
        print(f"server_cpu_ms_per_doc={server_cpu * 1000 / args.docs:.2f}", flush=True)
        print(f"client_cpu_ms_per_doc={client_cpu * 1000 / args.docs:.2f}", flush=True)
        doc_id = samples[0]["document"]["id"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/v1/documents/{doc_id}/receipt") as r,
        ):
            served = await r.read()
        trust = TrustFile.load(data_dir / "chain" / "trust.json")
        print(f"verify_per_s={verify_rate(samples, trust):.0f}", flush=True)
        print(f"receipt_bytes={len(served)}", flush=True)
        if args.large:
            mbps = await large_docs(url, args.large, args.large_mib * MiB, parallel=4)
            print(f"large_MBps={mbps:.1f}", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--large", type=int, default=16, help="number of large documents")
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: temp)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.dir))
        return
    with tempfile.TemporaryDirectory(prefix="service-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
