"""The ``cli`` extra is optional: `sessionscope` imports without it, and the command says
how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sessionscope
from sessionscope import _cli

FIX = 'pip install "sessionscope[cli]"'


def test_importing_sessionscope_imports_neither_typer_nor_alembic() -> None:
    code = (
        "import sys, sessionscope, sessionscope.testing\n"
        "loaded = {'typer', 'alembic', 'sessionscope._cli'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("package", ["typer", "alembic"])
def test_a_missing_extra_raises_with_the_pip_line(
    monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what an uninstalled package looks like
    for module in ("sessionscope.testing", "sessionscope._testclient"):
        monkeypatch.delitem(sys.modules, module, raising=False)  # imported afresh
    with pytest.raises(sessionscope.MissingDriverError) as raised:
        _cli.load()
    assert isinstance(raised.value, ImportError)
    assert str(raised.value) == (
        f"the sessionscope command needs the extra `cli` ({package} is not installed); fix: {FIX}"
    )


def test_the_console_script_says_it_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as exited:
        _cli.main()
    assert exited.value.code == (
        f"sessionscope: the sessionscope command needs the extra `cli` (typer is not "
        f"installed); fix: {FIX}"
    )
