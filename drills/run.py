"""Run the fault drills against the example service and print what each one found.

    python drills/run.py --short            # every drill, a few seconds each (CI)
    python drills/run.py --full             # the documented run (docs/reliability.md)
    python drills/run.py --short restart overload
    python drills/run.py --full overload --service-env DATABASE_SHED_OVERLOAD=false

Run as root on a machine with PostgreSQL's Debian tools (``pg_createcluster``): the runner
makes one PostgreSQL cluster of its own on port 5460 (role ``drill`` with a password), hands
it to every drill, and drops it at the end. The services listen on 127.0.0.1:8460-8479; the
invariant and hostile drills also use the shared PostgreSQL and MariaDB servers, in databases
named ``test_drills`` (``DRILLS_POSTGRES_URL``, ``DRILLS_MARIADB_URL``). Each drill is a script
run in a process of its own, within a time bound; the services' logs stay in the log
directory, which the secrets drill reads last, with every drill's figures and promises in
``results.json``. Exit status: 0 when every promise held.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cluster import CLUSTER_ENV, own_cluster, shared_env, tools_problem
from _common import HERE, LOG_DIR_ENV, RESULT_PREFIX, add_service_env, use_service_env

DRILLS = {
    "restart": "restart.py",
    "backend_kills": "backend_kills.py",
    "client_chaos": "client_chaos.py",
    "overload": "overload.py",
    "unknown_outcome": "unknown_outcome.py",
    "invariants": "invariants.py",
    "hostile": "hostile.py",
    "schemathesis": "schemathesis_drill.py",
    "secrets": "secrets_grep.py",  # last: it reads the logs of the others
}
BOUND = {False: 150.0, True: 1200.0}
"""Seconds a drill may take, short and full, before it is stopped and counted as broken."""


def run_drill(name: str, full: bool) -> dict[str, object]:
    command = [sys.executable, str(HERE / DRILLS[name]), "--full" if full else "--short"]
    started = time.monotonic()
    result: dict[str, object] = {"drill": name, "error": None, "promises": []}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = started + BOUND[full]
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
            else:
                print(line, end="", flush=True)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(command, BOUND[full])
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        result["error"] = f"stopped after {BOUND[full]:g} s"
    result["seconds"] = round(time.monotonic() - started, 1)
    result["exit"] = process.returncode
    if process.returncode not in (0, 1) and not result.get("error"):
        result["error"] = f"exit {process.returncode}"
    return result


def status(result: dict[str, object]) -> str:
    if result.get("error"):
        return "ERROR"
    promises = result["promises"]
    assert isinstance(promises, list)
    return "ok" if promises and all(promise["kept"] for promise in promises) else "BROKEN"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the fault drills against the example service.",
        epilog="Drills: " + ", ".join(DRILLS) + ". Exit status 0 when every promise held.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--short", dest="full", action="store_false", help="a few seconds each (default)"
    )
    size.add_argument("--full", dest="full", action="store_true", help="the documented run")
    parser.set_defaults(full=False)
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="where the services' logs go (default: a new temporary directory)",
    )
    add_service_env(parser)
    parser.add_argument("drills", nargs="*", metavar="drill", help="only these (default: all)")
    args = parser.parse_args(argv)
    use_service_env(args.service_env)
    unknown = [name for name in args.drills if name not in DRILLS]
    if unknown:
        parser.error(f"unknown drill {', '.join(unknown)}; choose from {', '.join(DRILLS)}")
    chosen = [name for name in DRILLS if not args.drills or name in args.drills]

    problem = tools_problem()
    if problem is not None:
        print(f"cannot run the drills: {problem}", file=sys.stderr)
        return 2
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="drills-"))
    logs.mkdir(parents=True, exist_ok=True)
    os.environ[LOG_DIR_ENV] = str(logs)
    print(
        f"drills ({'full' if args.full else 'short'}): {', '.join(chosen)}; logs in {logs}",
        flush=True,
    )
    results = []
    with own_cluster() as cluster:
        os.environ[CLUSTER_ENV] = shared_env(cluster)
        for name in chosen:
            results.append(run_drill(name, args.full))
    (logs / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print("\n== drills summary", flush=True)
    print(f"{'drill':<16} {'status':<7} {'kept':>5} {'seconds':>8}  broken promises")
    for result in results:
        promises = result["promises"]
        assert isinstance(promises, list)
        kept = sum(1 for promise in promises if promise["kept"])
        broken = "; ".join(f"{p['name']} ({p['detail']})" for p in promises if not p["kept"])
        print(
            f"{result['drill']!s:<16} {status(result):<7} {kept:>2}/{len(promises):<2} "
            f"{result['seconds']!s:>8}  {broken or result.get('error') or ''}"
        )
    return 0 if all(status(result) == "ok" for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
