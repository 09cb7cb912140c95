"""Memory: does the server's RSS stay flat under load? A leak per request would show here.

    python benchmarks/memory.py                      # sessionscope (async), PostgreSQL
    python benchmarks/memory.py --stack sessionscope-sync --requests 10000,100000

Starts one stack under one uvicorn worker, sends a fixed count of alternating GET and POST
requests at concurrency 64, and reads the worker's RSS at each checkpoint (requests sent so far).
Passes when the RSS at the last checkpoint is within ``--tolerance`` of the first one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="sessionscope")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--requests",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[10_000, 100_000],
        help="checkpoints: total requests sent when RSS is read",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()

    results = harness.HERE / ".results"
    results.mkdir(exist_ok=True)
    stack = next(s for s in harness.STACKS if s.name == args.stack)
    harness.ensure_venv(stack.venv, results / f"venv-{stack.venv}.log")
    harness.ensure_venv("core", results / "venv-core.log")
    if args.backend == "postgres":
        target = harness.postgres_target()
    else:
        target = harness.sqlite_target(Path(tempfile.mkdtemp(prefix="sessionscope-memory-")))
    harness.seed(target, create=True)

    readings: list[tuple[int, int]] = []
    sent = 0
    with harness.serve(stack, target, results / f"memory-{stack.name}.log") as server:
        for checkpoint in args.requests:
            load = harness.send_requests(server.port, checkpoint - sent, args.connections)
            sent = checkpoint
            rss = harness.rss_kib(server.process.pid)
            readings.append((sent, rss))
            print(
                f"{stack.name}: after {sent:>7} requests RSS {rss / 1024:7.1f} MiB"
                f"  ({load.requests / load.seconds:.0f} req/s, non-2xx {load.non_2xx})",
                flush=True,
            )
    first, last = readings[0][1], readings[-1][1]
    growth = (last - first) / first
    verdict = "PASS" if growth <= args.tolerance else "FAIL"
    print(
        f"{verdict}: RSS grew {growth:+.1%} from {readings[0][0]} to {readings[-1][0]} requests"
        f" (tolerance {args.tolerance:.0%})"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
