"""Run many simulated schedules: ``python -m chain.sim --schedules 100000 --seed 0``.

Prints one line per failing schedule (its seed replays it: ``--seed S --schedules 1``)
and a summary; exits 1 if any schedule was unsafe or not live.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from multiprocessing import Pool

from chain.sim.broken import VARIANTS
from chain.sim.runner import Outcome, run_seed


def _run(args: tuple[int, str, int | None]) -> Outcome:
    seed, variant, n = args
    return run_seed(seed, variant=variant, n=n)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the schedules, report; 0 when all passed."""
    parser = argparse.ArgumentParser(prog="python -m chain.sim", description=__doc__)
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="correct")
    parser.add_argument("--n", type=int, default=None, help="committee size (default: 4 or 7)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--verbose", action="store_true", help="print every schedule")
    args = parser.parse_args(argv)
    work = [(s, args.variant, args.n) for s in range(args.seed, args.seed + args.schedules)]
    started = time.monotonic()
    failed = 0
    if args.jobs > 1:
        with Pool(args.jobs) as pool:
            outcomes = pool.imap(_run, work, chunksize=16)
            failed = _report(outcomes, args.verbose)
    else:
        failed = _report(map(_run, work), args.verbose)
    elapsed = time.monotonic() - started
    print(
        f"schedules={args.schedules} failed={failed} variant={args.variant} seconds={elapsed:.1f}"
    )
    return 1 if failed else 0


def _report(outcomes: Iterable[Outcome], verbose: bool) -> int:
    failed = 0
    for outcome in outcomes:
        if not outcome.ok:
            failed += 1
            print("FAIL", outcome.describe(), flush=True)
        elif verbose:
            print(outcome.describe(), flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
