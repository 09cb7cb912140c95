"""Draw requests/s per stack from a results JSON: ``python chart.py results.json out.png``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(results: Path, png: Path) -> None:
    data = json.loads(results.read_text())
    summary = data["summary"]
    cells = sorted(
        {(r["endpoint"], r["connections"]) for r in summary}, key=lambda c: (c[0] != "get", c[1])
    )
    stacks = list(dict.fromkeys(r["stack"] for r in summary))
    rps = {(r["endpoint"], r["connections"], r["stack"]): r["requests_per_second"] for r in summary}
    figure, axes = plt.subplots(figsize=(12, 5.5))
    width = 0.8 / len(stacks)
    for index, stack in enumerate(stacks):
        xs = [i + (index - (len(stacks) - 1) / 2) * width for i in range(len(cells))]
        ys = [rps.get((endpoint, connections, stack), 0) for endpoint, connections in cells]
        bars = axes.bar(
            xs,
            ys,
            width,
            label=stack,
            edgecolor="black" if stack.startswith("sessionscope") else None,
        )
        if stack == "sessionscope":
            axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(range(len(cells)), [f"{e.upper()} c={c}" for e, c in cells])
    axes.set_ylabel("requests/s (median over rounds)")
    env = data["environment"]
    axes.set_title(
        f"items service, one uvicorn worker, {env['backend']}, {env['cores']} cores shared with "
        f"the database and wrk"
    )
    axes.legend(fontsize=8, ncols=2)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
