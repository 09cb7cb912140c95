"""What every drill shares: its command line, its figures and promises, and its report.

A drill prints its figures as a few ``name: value`` lines, then one line per promise
(``kept`` or ``BROKEN``), then one JSON line that starts with `RESULT_PREFIX` for the runner.
It exits 1 when a promise broke (or none was checked), 2 when it could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULT_PREFIX = "DRILL-RESULT "
LOG_DIR_ENV = "DRILLS_LOG_DIR"
"""Where the services of a run write their output (the runner sets it; the secrets drill
reads every file there)."""

SERVICE_ENV = "DRILLS_SERVICE_ENV"
"""Variables set on every service a drill starts, over the drill's own (JSON; the
``--service-env`` option): the same drill with a feature off, for a comparison."""

HTTP_PORTS = range(8460, 8480)
"""The loopback ports the drills' services listen on."""


@dataclass
class Promise:
    name: str
    kept: bool
    detail: str


@dataclass
class Report:
    drill: str
    full: bool
    figures: dict[str, Any] = field(default_factory=dict)
    promises: list[Promise] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value
        print(f"  {name}: {value}", flush=True)

    def promise(self, name: str, kept: bool, detail: str = "") -> bool:
        self.promises.append(Promise(name, kept, detail))
        mark = "kept  " if kept else "BROKEN"
        print(f"  [{mark}] {name}" + (f" ({detail})" if detail else ""), flush=True)
        return kept

    @property
    def broken(self) -> list[Promise]:
        return [promise for promise in self.promises if not promise.kept]

    def finish(self, error: str | None = None) -> int:
        seconds = round(time.monotonic() - self.started, 1)
        result = {
            "drill": self.drill,
            "mode": "full" if self.full else "short",
            "seconds": seconds,
            "figures": self.figures,
            "promises": [promise.__dict__ for promise in self.promises],
            "error": error,
        }
        print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
        if error is not None:
            return 2
        # A drill that checked no promise has shown nothing: that is no pass.
        return 1 if self.broken or not self.promises else 0


def parse(description: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0] if description else None,
        epilog="Exit status: 0 every promise kept, 1 a promise broke, 2 the drill could not run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--short", dest="full", action="store_false", help="a few seconds (the default)"
    )
    size.add_argument("--full", dest="full", action="store_true", help="the documented run")
    parser.set_defaults(full=False)
    add_service_env(parser)
    args = parser.parse_args(argv)
    use_service_env(args.service_env)
    return args


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_service_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set on the service under drill, over the drill's own settings (repeatable), "
        "e.g. DATABASE_SHED_OVERLOAD=false to see a promise break without its feature",
    )


def use_service_env(assignments: list[tuple[str, str]]) -> None:
    """Pass ``--service-env`` on to the services (and, from the runner, to the drills)."""
    if assignments:
        os.environ[SERVICE_ENV] = json.dumps({**service_env(), **dict(assignments)})


def service_env() -> dict[str, str]:
    """The ``--service-env`` variables of this run."""
    configured: dict[str, str] = json.loads(os.environ.get(SERVICE_ENV) or "{}")
    return configured


def log_dir() -> Path:
    """The run's log directory (`LOG_DIR_ENV`), or a new temporary one for a drill run alone."""
    configured = os.environ.get(LOG_DIR_ENV)
    if configured:
        path = Path(configured)
    else:
        path = Path(tempfile.mkdtemp(prefix="drills-"))
        os.environ[LOG_DIR_ENV] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(drill: str, description: str | None, body: Callable[[Report], None]) -> int:
    """Parse the command line, print the drill's header, run ``body``, report."""
    args = parse(description, sys.argv[1:])
    report = Report(drill, args.full)
    overrides = " ".join(f"{name}={value}" for name, value in service_env().items())
    print(
        f"drill {drill} ({'full' if args.full else 'short'})"
        + (f"; service env {overrides}" if overrides else ""),
        flush=True,
    )
    try:
        body(report)
    except Exception:
        traceback.print_exc()
        return report.finish(error=traceback.format_exc(limit=3).strip().splitlines()[-1])
    return report.finish()


def percentile(values: Iterable[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def latency_summary(seconds: Iterable[float]) -> str:
    values = list(seconds)
    if not values:
        return "none"
    p50 = statistics.median(values)
    p99 = percentile(values, 0.99) or 0.0
    top = max(values)
    return (
        f"n={len(values)} p50={p50 * 1000:.0f} ms p99={p99 * 1000:.0f} ms max={top * 1000:.0f} ms"
    )
