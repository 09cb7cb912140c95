"""Print a results JSON of ``run.py`` as Markdown tables: ``python report.py results.json``."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REFERENCE_STACKS = (
    "handwritten-async",
    "fastapi-sqla",
    "advanced-alchemy",
    "fastapi-async-sqlalchemy",
)


def main(path: Path) -> None:
    data = json.loads(path.read_text())
    env = data["environment"]
    print(f"Command: `{env['command']}`  ")
    print(
        f"Machine: {env['cores']} cores ({env['cpu']}), shared by the app, the database and wrk; "
        f"{env['database']}; Python {env['python']}; {env['wrk']}.  "
    )
    print(
        f"Rounds: {env['rounds']} of {env['duration']:g} s per cell; "
        f"run time {env['elapsed_seconds']} s.\n"
    )
    print("Versions per venv:\n")
    for venv, versions in env["versions"].items():
        listed = ", ".join(f"{name} {version}" for name, version in versions.items())
        print(f"- `{venv}`: {listed}")
    cells: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in data["summary"]:
        cells[(row["endpoint"], row["connections"])].append(row)
    for (endpoint, connections), rows in cells.items():
        print(f"\n### {endpoint.upper()} at concurrency {connections}\n")
        print(
            "| stack | req/s | p50 ms | p99 ms | non-2xx | socket errors | timeouts "
            "| app CPU µs/req | ratio to sessionscope | instructions/req | ÷ ceiling "
            "| round trips/req |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            instructions = row.get("instructions_per_request")
            ratio = row.get("instructions_ratio_to_ceiling")
            trips = row.get("round_trips_per_request")
            print(
                f"| {row['stack']} | {row['requests_per_second']:.0f} | {row['p50_ms']:.1f} "
                f"| {row['p99_ms']:.1f} | {row['non_2xx']} | {row['socket_errors']} "
                f"| {row['timeouts']} | {row['cpu_us_per_request']} "
                f"| {row['ratio_to_sessionscope'] or 0:.2f} "
                f"| {'-' if instructions is None else f'{instructions / 1e6:.2f}M'} "
                f"| {'-' if ratio is None else f'{ratio:.2f}'} "
                f"| {'-' if trips is None else f'{trips:g}'} |"
            )
    print("\n### Targets\n")
    print("| cell | sessionscope ÷ fastest reference | sync ÷ seed | sessionscope ÷ bare asyncpg |")
    print("|---|---|---|---|")
    for (endpoint, connections), rows in cells.items():
        rps = {row["stack"]: row["requests_per_second"] for row in rows}
        ours = rps.get("sessionscope", 0)
        references = {name: rps[name] for name in REFERENCE_STACKS if rps.get(name)}
        fastest = max(references, key=references.__getitem__) if references else None
        versus = f"{ours / references[fastest]:.2f} ({fastest})" if fastest else "-"
        seed = rps.get("seed-get_db")
        sync = (
            f"{rps['sessionscope-sync'] / seed:.2f}"
            if seed and "sessionscope-sync" in rps
            else "seed served nothing"
        )
        bare = f"{ours / rps['bare-asyncpg']:.2f}" if rps.get("bare-asyncpg") else "-"
        print(f"| {endpoint.upper()} c={connections} | {versus} | {sync} | {bare} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
