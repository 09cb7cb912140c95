"""Fixtures of the server tests: the probe app in real uvicorn processes on real databases.

One server per (backend, profile) for the whole session: starting uvicorn costs about a
second, and tests on one server use their own rows. Each server gets its own table prefix;
its tables are created before it starts and dropped after it stops.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "apps"))

from srv_harness import ProbeServer, ProbeServers


@pytest.fixture(scope="session")
def probe_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbeServers]:
    servers = ProbeServers(tmp_path_factory.mktemp("servers"))
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def probe(
    probe_servers: ProbeServers, backend: str, database_url: str
) -> Callable[[str], ProbeServer]:
    """``probe(profile)``: the probe app on this test's backend, started on first use."""

    def start(profile: str = "default") -> ProbeServer:
        return probe_servers.get(backend, database_url, profile)

    return start
