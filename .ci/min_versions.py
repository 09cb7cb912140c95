"""Print pip constraints pinning every declared floor of pyproject.toml to its minimum.

pyproject.toml stays the one source of truth: each requirement of ``dependencies`` and of
every extra (the developers' tools are dependency groups, not extras) must read
``name>=X`` (optionally with extras), and is pinned here to ``name==X``. CI installs the
package with these constraints and runs the SQLite suite, so a floor is a version that was
tested.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    sys.exit("min_versions.py needs Python >= 3.11 (tomllib)")

FLOOR = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*>=\s*(?P<min>[^\s,;]+)$"
)


def floors(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra_requirements in project["optional-dependencies"].values():
        requirements += extra_requirements
    pins: dict[str, str] = {}
    for requirement in requirements:
        if requirement.startswith(project["name"] + "["):
            continue  # the package's own extras, listed on their own
        match = FLOOR.match(requirement)
        if match is None:
            sys.exit(f"{requirement!r}: a runtime requirement must read 'name>=floor'")
        name = re.sub(r"[-_.]+", "-", match["name"]).lower()
        if pins.setdefault(name, match["min"]) != match["min"]:
            sys.exit(f"{name}: two different floors ({pins[name]}, {match['min']})")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for name, version in sorted(floors(root / "pyproject.toml").items()):
        print(f"{name}=={version}")
