"""Benchmark runner: every stack of the items service, driven by wrk, interleaved over rounds.

    python benchmarks/run.py                       # PostgreSQL, 3 rounds of 5 s per cell
    python benchmarks/run.py --duration 2 --rounds 1 --concurrency 64   # a quick look
    python benchmarks/run.py --backend sqlite
    python benchmarks/run.py --stacks sessionscope-sync,seed-get_db --concurrency 1 \
        --warmup-concurrency 1                     # the seed pattern where it does not deadlock

Each round seeds 10,000 rows, then starts every stack in turn (one uvicorn worker, order
rotated each round), warms it up and drives GET and POST at each concurrency. The table shows
medians over rounds; errors are summed over rounds. Results also go to a JSON file, and
``--chart`` draws requests/s per stack (needs matplotlib, in the core venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import STACKS, Stack, Target

VERSIONED = [
    "sessionscope",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "aiosqlite",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "fastapi-sqla",
    "advanced-alchemy",
    "fastapi-async-sqlalchemy",
]


def main() -> None:
    args = parse_args()
    harness.require_wrk()
    results_dir = harness.HERE / ".results"
    results_dir.mkdir(exist_ok=True)
    stacks = [s for s in STACKS if args.stacks is None or s.name in args.stacks]
    if args.backend == "sqlite":
        stacks = [s for s in stacks if not s.postgres_only]
    print(f"preparing venvs for {len(stacks)} stacks", flush=True)
    for venv in sorted({"core", *(s.venv for s in stacks)}):
        harness.ensure_venv(venv, results_dir / f"venv-{venv}.log")

    scratch = Path(tempfile.mkdtemp(prefix="sessionscope-bench-"))
    target = (
        harness.postgres_target() if args.backend == "postgres" else harness.sqlite_target(scratch)
    )
    harness.seed(target, create=True)
    environment = describe_environment(stacks, target, args)

    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    for round_index in range(args.rounds):
        shift = round_index % len(stacks)
        order = stacks[shift:] + stacks[:shift]
        for stack in order:
            harness.seed(target)
            log = results_dir / f"{stack.name}.log"
            print(f"round {round_index + 1}/{args.rounds}: {stack.name}", flush=True)
            with harness.serve(stack, target, log) as server:
                for endpoint in args.endpoints:
                    harness.run_wrk(
                        server.url,
                        endpoint,
                        connections=args.warmup_concurrency,
                        duration=args.warmup,
                    )
                for endpoint in args.endpoints:
                    for connections in args.concurrency:
                        cpu_before = harness.cpu_seconds(server.process.pid)
                        result = harness.run_wrk(
                            server.url, endpoint, connections=connections, duration=args.duration
                        )
                        cpu = harness.cpu_seconds(server.process.pid) - cpu_before
                        cpu_us = 1e6 * cpu / max(1, result.requests)
                        runs.append(
                            {
                                "round": round_index,
                                "stack": stack.name,
                                "endpoint": endpoint,
                                "connections": connections,
                                **asdict(result),
                                "cpu_us_per_request": round(cpu_us),
                            }
                        )
                        print(
                            f"    {endpoint:4} c={connections:<4}"
                            f" {result.requests_per_second:9.1f} req/s"
                            f"  p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms"
                            f"  non-2xx {result.non_2xx}  socket {result.socket_errors}"
                            f"  timeouts {result.timeouts}  cpu {cpu_us:.0f} us/req",
                            flush=True,
                        )
            # Written after every stack, so an interrupted run keeps what it measured.
            save(Path(args.output), environment, runs, stacks, args, started)
    summary = save(Path(args.output), environment, runs, stacks, args, started)
    print_summary(summary, args)
    output = Path(args.output)
    print(f"\nresults: {output}")
    if args.chart:
        draw_chart(output, Path(args.chart))


def save(
    output: Path,
    environment: dict[str, Any],
    runs: list[dict[str, Any]],
    stacks: list[Stack],
    args: argparse.Namespace,
    started: float,
) -> list[dict[str, Any]]:
    environment["elapsed_seconds"] = round(time.monotonic() - started)
    summary = summarise(runs, stacks, args)
    document = {"environment": environment, "summary": summary, "runs": runs}
    output.write_text(json.dumps(document, indent=1))
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per endpoint")
    parser.add_argument(
        "--warmup-concurrency",
        type=int,
        default=64,
        help="connections of the warm-up (1 lets the seed pattern, which deadlocks at 64, "
        "be measured at concurrency 1)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 64, 512]
    )
    parser.add_argument(
        "--endpoints", type=lambda v: v.split(","), default=["get", "post"], help="get,post"
    )
    parser.add_argument(
        "--stacks",
        type=lambda v: v.split(","),
        default=None,
        help="comma-separated subset of: " + ", ".join(s.name for s in STACKS),
    )
    parser.add_argument("--output", default=str(harness.HERE / ".results" / "results.json"))
    parser.add_argument("--chart", default=None, help="write a PNG bar chart here")
    parser.add_argument(
        "--instructions",
        default=str(harness.HERE / ".results" / "instructions.json"),
        help="results of instructions.py, shown beside requests/s (skipped when missing)",
    )
    args = parser.parse_args()
    known = {s.name for s in STACKS}
    if args.stacks and not set(args.stacks) <= known:
        parser.error(f"unknown stacks {sorted(set(args.stacks) - known)}")
    if "sessionscope" not in (args.stacks or known):
        args.stacks = ["sessionscope", *args.stacks]
    return args


def describe_environment(
    stacks: list[Stack], target: Target, args: argparse.Namespace
) -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "backend": target.backend,
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?",
        "database": database_version(target),
        "versions": {
            venv: harness.versions(venv, VERSIONED)
            for venv in sorted({"core", *(s.venv for s in stacks)})
        },
        "duration": args.duration,
        "rounds": args.rounds,
    }


def database_version(target: Target) -> str:
    code = (
        "import sys\nfrom sqlalchemy import create_engine, text\n"
        "e = create_engine(sys.argv[1])\n"
        "with e.connect() as c:\n"
        "    q = 'SELECT sqlite_version()' if e.dialect.name == 'sqlite' else 'SELECT version()'\n"
        "    print(c.execute(text(q)).scalar())\n"
    )
    result = subprocess.run(
        [str(harness.venv_python("core")), "-c", code, target.sync_url],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().split(" on ")[0] or "?"


def summarise(
    runs: list[dict[str, Any]], stacks: list[Stack], args: argparse.Namespace
) -> list[dict[str, Any]]:
    work = load_instructions(Path(args.instructions))
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        cells[(run["endpoint"], run["connections"], run["stack"])].append(run)
    summary = []
    for endpoint in args.endpoints:
        for connections in args.concurrency:
            baseline = cells.get((endpoint, connections, "sessionscope"))
            base_rps = (
                statistics.median(r["requests_per_second"] for r in baseline) if baseline else None
            )
            for stack in stacks:
                measured = cells.get((endpoint, connections, stack.name))
                if not measured:
                    continue
                rps = statistics.median(r["requests_per_second"] for r in measured)
                summary.append(
                    {
                        "endpoint": endpoint,
                        "connections": connections,
                        "stack": stack.name,
                        "requests_per_second": round(rps, 1),
                        "p50_ms": round(statistics.median(r["p50_ms"] for r in measured), 2),
                        "p99_ms": round(statistics.median(r["p99_ms"] for r in measured), 2),
                        "cpu_us_per_request": round(
                            statistics.median(r["cpu_us_per_request"] for r in measured)
                        ),
                        "non_2xx": sum(r["non_2xx"] for r in measured),
                        "socket_errors": sum(r["socket_errors"] for r in measured),
                        "timeouts": sum(r["timeouts"] for r in measured),
                        "ratio_to_sessionscope": round(rps / base_rps, 2) if base_rps else None,
                        "rounds": len(measured),
                        **work.get((stack.name, endpoint), _NO_COUNTS),
                    }
                )
    return summary


_NO_COUNTS = {
    "instructions_per_request": None,
    "instructions_ratio_to_ceiling": None,
    "round_trips_per_request": None,
}


def load_instructions(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Instructions and round trips per request from ``instructions.py``'s results, by
    (stack, endpoint): machine-independent figures to read beside requests/s."""
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["results"]
    return {
        (row["stack"], row["endpoint"]): {
            "instructions_per_request": row["instructions_per_request"],
            "instructions_ratio_to_ceiling": row.get("ratio_to_ceiling"),
            "round_trips_per_request": row["round_trips_per_request"],
        }
        for row in rows
    }


COLUMNS = (
    ("endpoint", "endpoint", "8", ""),
    ("c", "connections", ">4", ""),
    ("stack", "stack", "26", ""),
    ("req/s", "requests_per_second", ">9", ".1f"),
    ("p50 ms", "p50_ms", ">9", ".2f"),
    ("p99 ms", "p99_ms", ">9", ".2f"),
    ("non-2xx", "non_2xx", ">8", ""),
    ("sock", "socket_errors", ">5", ""),
    ("t/o", "timeouts", ">5", ""),
    ("cpu us/req", "cpu_us_per_request", ">10", ""),
    ("ratio", "ratio_to_sessionscope", ">6", ".2f"),
    ("Minstr/req", "instructions_per_request", ">10", ".3f"),
    ("/ceiling", "instructions_ratio_to_ceiling", ">8", ".3f"),
    ("trips", "round_trips_per_request", ">5", ".1f"),
)


def print_summary(summary: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\nmedians over rounds (errors summed); ratio = stack / sessionscope")
    header = " ".join(f"{title:{align}}" for title, _, align, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for row in summary:
        shown = {
            **row,
            "instructions_per_request": (row.get("instructions_per_request") or 0) / 1e6,
        }
        print(" ".join(f"{shown.get(key) or 0:{align}{fmt}}" for _, key, align, fmt in COLUMNS))
    print_targets(summary)


REFERENCE_STACKS = (
    "handwritten-async",
    "fastapi-sqla",
    "advanced-alchemy",
    "fastapi-async-sqlalchemy",
)


def print_targets(summary: list[dict[str, Any]]) -> None:
    """sessionscope against the fastest of the hand-written and published stacks."""
    rps: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for row in summary:
        rps[(row["endpoint"], row["connections"])][row["stack"]] = row["requests_per_second"]
    print(
        "\nsessionscope / fastest of handwritten-async and the integrations; sync / seed; / bare;"
        " fastpath / fastest reference; / ceiling"
    )
    for (endpoint, connections), cell in sorted(rps.items()):
        ours = cell.get("sessionscope")
        references = {name: cell[name] for name in REFERENCE_STACKS if name in cell}
        parts = []
        if ours and references:
            fastest = max(references, key=references.__getitem__)
            parts.append(f"{ours / references[fastest]:.2f}x {fastest}")
        if "sessionscope-sync" in cell and cell.get("seed-get_db"):
            parts.append(f"sync/seed {cell['sessionscope-sync'] / cell['seed-get_db']:.2f}x")
        if ours and cell.get("bare-asyncpg"):
            parts.append(f"of bare {ours / cell['bare-asyncpg']:.2f}x")
        if cell.get("fastpath") and references:
            best = max(references, key=references.__getitem__)
            parts.append(f"fastpath {cell['fastpath'] / references[best]:.2f}x {best}")
        if ours and cell.get("ceiling"):
            parts.append(f"of ceiling {ours / cell['ceiling']:.2f}x")
        print(f"  {endpoint:4} c={connections:<4} " + "; ".join(parts))


def draw_chart(results: Path, png: Path) -> None:
    command = [
        str(harness.venv_python("core")),
        str(harness.HERE / "chart.py"),
        str(results),
        str(png),
    ]
    completed = subprocess.run(command)
    if completed.returncode != 0:
        print(
            "chart not drawn: install matplotlib in the core venv (it is in requirements/core.txt)"
        )


if __name__ == "__main__":
    main()
