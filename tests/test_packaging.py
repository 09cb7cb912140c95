"""The published wheel: what it holds, what it declares, and what its console script does
when the example service's extra is not installed."""

from __future__ import annotations

import configparser
import email
import subprocess
import sys
import venv
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"pytest", "mypy", "ruff", "schemathesis", "selenium", "mkdocs", "httpx2"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("sessionscope-*.whl")
    return built


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _read(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (name for name in archive.namelist() if name.endswith(suffix))
        return archive.read(name).decode()


def _metadata(wheel: Path) -> Message:
    return email.message_from_string(_read(wheel, ".dist-info/METADATA"))


def test_the_wheel_holds_the_library_the_example_service_and_the_license(wheel: Path) -> None:
    names = _names(wheel)
    top_levels = {name.split("/")[0] for name in names}
    assert top_levels == {"sessionscope", "sessionscope_demo", "sessionscope-0.1.0.dist-info"}
    assert "sessionscope/py.typed" in names
    assert "sessionscope/pagination.py" in names
    assert "sessionscope_demo/migrations/script.py.mako" in names
    assert "sessionscope-0.1.0.dist-info/licenses/LICENSE" in names
    assert "MIT License" in _read(wheel, "licenses/LICENSE")
    assert not [name for name in names if name.startswith(("tests/", "docs", "benchmarks/"))]


def test_the_metadata_declares_the_license_and_runtime_extras_only(wheel: Path) -> None:
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert set(metadata.get_all("Provides-Extra") or []) == {
        "postgres",
        "mysql",
        "sqlite",
        "testing",
        "cli",
        "sqlmodel",
        "prometheus",
        "otel",
        "demo",
    }
    required = {
        requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip().lower()
        for requirement in metadata.get_all("Requires-Dist") or []
    }
    assert not required & DEV_TOOLS
    # No invented addresses: any project URL the metadata carries is absolute.
    for label_and_url in metadata.get_all("Project-URL") or []:
        assert label_and_url.split(", ", 1)[1].startswith("https://")


def test_the_entry_points_are_the_pytest_plugin_and_the_self_explaining_command(
    wheel: Path,
) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_read(wheel, ".dist-info/entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {
        "sessionscope": "sessionscope._cli:main",
        "sessionscope-demo": "sessionscope_demo.command:run",
    }
    assert dict(entry_points["pytest11"]) == {"sessionscope": "sessionscope.pytest_plugin"}


def test_the_command_without_the_demo_extra_names_the_install_line(
    wheel: Path, tmp_path: Path
) -> None:
    # A bare environment with the wheel alone: none of the demo extra's packages is there.
    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [str(environment / "bin" / "sessionscope-demo")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert 'pip install "sessionscope[demo]"' in result.stderr
    assert "email-validator" in result.stderr
    assert "Traceback" not in result.stderr
