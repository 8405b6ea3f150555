"""Benchmarks of the ``notary`` command (issue 5), run by hand; prints ``name=value`` lines.

    verify_cli_ms=...      median wall time of one ``notary verify`` process (start included),
                           a valid receipt for a 1 MiB document; target <= 500
    logs_push_MBps=...     ``notary logs push`` of --size bytes (default 1 GiB) of ~200-byte
                           lines, default settings, process start to every segment anchored,
                           against a fresh embedded ``notary serve``; target >= 50
    segments_per_s=...     the same with ``--segment-bytes 4096`` over min(--size, 8 MiB);
                           target >= 500

Each benchmark is a function that prints its own lines; ``main`` runs those named on the
command line (default: all). Run: ``.venv/bin/python benchmarks/cli_bench.py [NAME...]
[--runs N] [--size BYTES]`` (a smaller --size while iterating).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.notary import receipt_factory


def notary_command() -> list[str]:
    """The installed ``notary`` script next to this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("notary")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def verify_cli_ms(runs: int) -> None:
    """Median wall time of ``notary verify FILE --receipt R --trust T`` as a new process."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        document = os.urandom(1024 * 1024)
        fixture = receipt_factory.build(document, tree_size=1000, leaf_index=637)
        (tmp / "doc.bin").write_bytes(document)
        (tmp / "receipt.json").write_text(fixture.receipt.dumps())
        (tmp / "trust.json").write_text(fixture.trust.dumps())
        argv = [
            *notary_command(),
            "verify",
            str(tmp / "doc.bin"),
            "--receipt",
            str(tmp / "receipt.json"),
            "--trust",
            str(tmp / "trust.json"),
        ]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
        times = []
        for i in range(runs + 1):
            start = time.perf_counter()
            out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            elapsed = (time.perf_counter() - start) * 1000
            if out.returncode != 0:
                raise SystemExit(f"notary verify failed ({out.returncode}): {out.stderr}")
            if i > 0:  # the first run warms the page cache and writes .pyc files
                times.append(elapsed)
    print(f"verify_cli_ms={statistics.median(times):.0f}")
    print(f"verify_cli_ms_max={max(times):.0f}")


# --size of the log benchmarks (bytes); set by main.
LOG_SIZE = 1024**3


def _log_file(path: Path, size: int) -> int:
    """Write about ``size`` bytes of distinct log lines of about 200 bytes; return the size."""
    written, i = 0, 0
    with path.open("wb") as f:
        while written < size:
            block = b"".join(
                f"2026-01-02T03:04:05.{n % 1000000:06d}Z INFO oms order={n} side=BUY "
                f"qty={n % 977} sym=ACME{n % 31} px={n % 1000}.{n % 100:02d} "
                f"acct=A{n % 9973:05d} venue=XNYS route=DMA tif=DAY status=NEW "
                f"clordid={n:016x} {'x' * (n % 40)}\n".encode()
                for n in range(i, i + 5000)
            )
            f.write(block)
            written += len(block)
            i += 5000
    return written


def _timed_push(size: int, *push_args: str) -> tuple[float, dict[str, object]]:
    """Start a fresh ``notary serve`` (embedded defaults), push ``size`` bytes of log
    lines with ``push_args``, until anchored; return (seconds, the push's JSON)."""
    import json

    from tests.cli.logs_helpers import free_port, serve_at

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        log = tmp / "bench.log"
        size = _log_file(log, size)
        server = serve_at(tmp, free_port(), segment_size=None)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
            env["NOTARY_URL"] = server.url
            argv = [*notary_command(), "logs", "push", str(log), "--stream", "bench"]
            argv += [*push_args, "--state-dir", str(tmp / "state"), "--json"]
            start = time.perf_counter()
            out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            elapsed = time.perf_counter() - start
        finally:
            server.stop()
        if out.returncode != 0:
            raise SystemExit(f"notary logs push failed ({out.returncode}): {out.stderr}")
        result: dict[str, object] = json.loads(out.stdout)["streams"][0]
        return elapsed, result


def logs_push_MBps(runs: int) -> None:
    """``notary logs push`` of LOG_SIZE bytes of ~200-byte lines, default settings, until
    every segment is anchored (a fresh embedded service; process start included)."""
    elapsed, result = _timed_push(LOG_SIZE)
    size = int(str(result["bytes"]))
    print(f"logs_push_MBps={size / elapsed / 1e6:.1f}")
    print(f"logs_push_segments={result['segments']}")
    print(f"logs_push_s={elapsed:.1f}")


def segments_per_s(runs: int) -> None:
    """Segments per second of ``notary logs push --segment-bytes 4096`` until anchored,
    over min(LOG_SIZE, 8 MiB) bytes of log lines."""
    elapsed, result = _timed_push(min(LOG_SIZE, 8 * 1024 * 1024), "--segment-bytes", "4096")
    print(f"segments_per_s={int(str(result['segments'])) / elapsed:.1f}")


BENCHMARKS: dict[str, Callable[[int], None]] = {
    "verify_cli_ms": verify_cli_ms,
    "logs_push_MBps": logs_push_MBps,
    "segments_per_s": segments_per_s,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--runs", type=int, default=11, help="timed runs per benchmark")
    parser.add_argument(
        "--size", type=int, default=LOG_SIZE, help="bytes of log lines for the logs benchmarks"
    )
    args = parser.parse_args()
    globals()["LOG_SIZE"] = args.size
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}")
    for name in args.names or BENCHMARKS:
        BENCHMARKS[name](args.runs)


if __name__ == "__main__":
    main()
