"""The fault drills (``drills/``): every script imports, states its promises and answers
``--help``; a drill's report gives the runner its verdict.

The drills themselves run with ``python drills/run.py`` (``.ci/run`` runs the short version,
``docs/reliability.md`` has the figures of the full one): they build a PostgreSQL cluster,
restart it and kill its backends, which no unit test does.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from .conftest import require_server

DRILLS_DIR = Path(__file__).resolve().parent.parent / "drills"
SCRIPTS = sorted(path.name for path in DRILLS_DIR.glob("*.py") if not path.name.startswith("_"))


@pytest.fixture
def drills(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The drills' directory on ``sys.path`` (as when a script runs), its modules forgotten
    afterwards: their names (``run``, ``restart``...) are the scripts' own, not a package's."""
    monkeypatch.syspath_prepend(str(DRILLS_DIR))
    yield
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == DRILLS_DIR:
            del sys.modules[name]


def load(name: str) -> ModuleType:
    return importlib.import_module(name.removesuffix(".py"))


def test_the_runner_knows_every_drill_script(drills: None) -> None:
    runner = load("run.py")
    assert sorted([*runner.DRILLS.values(), "run.py"]) == SCRIPTS
    assert list(runner.DRILLS)[-1] == "secrets"  # it reads the logs of the others


@pytest.mark.parametrize("script", [name for name in SCRIPTS if name != "run.py"])
def test_every_drill_imports_and_states_its_promises(drills: None, script: str) -> None:
    module = load(script)
    assert "Promise" in (module.__doc__ or "")
    assert callable(module.drill)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(DRILLS_DIR / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--full" in done.stdout
    assert "--short" in done.stdout


def test_the_runner_refuses_an_unknown_drill(
    drills: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load("run.py").main(["--short", "no_such_drill"])
    assert exit_info.value.code == 2
    assert "unknown drill no_such_drill" in capsys.readouterr().err


def result_line(output: str) -> dict[str, object]:
    common = sys.modules["_common"]
    lines = [line for line in output.splitlines() if line.startswith(common.RESULT_PREFIX)]
    assert len(lines) == 1
    result: dict[str, object] = json.loads(lines[0].removeprefix(common.RESULT_PREFIX))
    return result


def test_a_broken_promise_makes_the_drill_fail(
    drills: None, capsys: pytest.CaptureFixture[str]
) -> None:
    common = load("_common")
    runner = load("run.py")
    kept = common.Report("example", full=False)
    kept.promise("held", True)
    assert kept.finish() == 0
    assert runner.status(result_line(capsys.readouterr().out)) == "ok"

    broken = common.Report("example", full=False)
    broken.figure("answers", "200: 3, 500: 1")
    broken.promise("held", True)
    broken.promise("0 x 500", False, "1 x 500")
    assert broken.finish() == 1
    result = result_line(capsys.readouterr().out)
    assert runner.status(result) == "BROKEN"
    assert result["figures"] == {"answers": "200: 3, 500: 1"}


def test_a_drill_that_cannot_run_is_an_error_not_a_pass(
    drills: None, capsys: pytest.CaptureFixture[str]
) -> None:
    common = load("_common")
    runner = load("run.py")
    nothing = common.Report("example", full=False)
    assert nothing.finish(error="the cluster did not start") == 2
    assert runner.status(result_line(capsys.readouterr().out)) == "ERROR"
    silent = common.Report("example", full=False)
    assert silent.finish() == 1
    # No promise checked is no evidence: the runner does not count it as kept.
    assert runner.status(result_line(capsys.readouterr().out)) == "BROKEN"


def test_percentiles_of_the_figures(drills: None) -> None:
    common = load("_common")
    values = [float(number) for number in range(1, 101)]
    assert common.percentile(values, 0.99) == 99.0
    assert common.percentile(values, 0.5) == 50.0
    assert common.percentile([], 0.99) is None


def test_service_env_reaches_the_service_under_drill(
    drills: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--service-env` is how a drill is run again without its feature (docs/reliability.md).
    monkeypatch.setenv("DRILLS_LOG_DIR", str(tmp_path))
    monkeypatch.delenv("DRILLS_SERVICE_ENV", raising=False)
    common = load("_common.py")
    with pytest.raises(SystemExit):
        common.parse(None, ["--service-env", "NO_EQUALS_SIGN"])
    common.parse(None, ["--service-env", "DATABASE_POOL_SIZE=3", "--service-env", "X=a=b"])
    assert common.service_env() == {"DATABASE_POOL_SIZE": "3", "X": "a=b"}
    service = load("_service.py")
    port = common.HTTP_PORTS[-1]
    url = f"sqlite+aiosqlite:///{tmp_path / 'drill.db'}"
    with service.serve(url, port, "service-env", env={"DATABASE_POOL_SIZE": "7"}) as served:
        pools = httpx.get(f"{served.url}/readyz", timeout=10).json()["pools"]
    assert {pool["size"] for pool in pools.values()} == {3}


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_the_drills_create_their_database_on_a_shared_server(drills: None, backend: str) -> None:
    # A fresh machine has no `test_drills` database: the invariant and hostile drills make it.
    server = make_url(require_server(backend))
    name = f"test_drills_{uuid.uuid4().hex[:8]}"
    url = server.set(database=name).render_as_string(hide_password=False)
    service = load("_service.py")
    service.ensure_server_database(url)
    service.ensure_server_database(url)  # and find it the second time
    admin = server.set(database="postgres" if backend == "postgres" else "mysql")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            quoted = f'"{name}"' if backend == "postgres" else f"`{name}`"
            connection.execute(text(f"DROP DATABASE {quoted}"))
    finally:
        engine.dispose()
