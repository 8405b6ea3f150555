"""Benchmarks of the ``notary`` command (issue 5), run by hand; prints ``name=value`` lines.

    verify_cli_ms=...      median wall time of one ``notary verify`` process (start included),
                           a valid receipt for a 1 MiB document; target <= 500

Each benchmark is a function that prints its own lines; ``main`` runs those named on the
command line (default: all). Run: ``.venv/bin/python benchmarks/cli_bench.py [NAME...]
[--runs N]``.
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


BENCHMARKS: dict[str, Callable[[int], None]] = {"verify_cli_ms": verify_cli_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--runs", type=int, default=11, help="timed runs per benchmark")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}")
    for name in args.names or BENCHMARKS:
        BENCHMARKS[name](args.runs)


if __name__ == "__main__":
    main()
