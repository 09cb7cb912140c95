"""F4 on a live server: the request scenarios of the server tests, through a real PgBouncer
in transaction pooling mode (5 server connections) with ``DATABASE_PGBOUNCER=true``.

The scenarios are the other modules' own test functions, given a probe app that reaches
PostgreSQL through PgBouncer. (Those that find the app's server connections by backend id,
killing or counting them, do not apply: behind PgBouncer a client has no fixed one.)
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_server_background
import test_server_commit
import test_server_retries
from srv_harness import ProbeServer, ProbeServers

sys.path.insert(0, str(Path(__file__).parent.parent.parent))
from tests.conftest import require_server
from tests.pgbouncer import require_pgbouncer, run_pgbouncer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

SCENARIOS: list[tuple[Callable[..., None], dict[str, Any]]] = [
    (test_server_commit.test_write_is_visible_to_the_next_connection, {}),
    (test_server_commit.test_deferred_foreign_key_fails_at_commit_with_409, {}),
    (test_server_commit.test_unique_violation_is_409_at_commit_or_flush, {}),
    (test_server_commit.test_error_response_after_a_write_persists_nothing, {"raise_it": True}),
    (test_server_commit.test_error_response_after_a_write_persists_nothing, {"raise_it": False}),
    (test_server_background.test_background_task_using_the_request_session_is_refused, {}),
    (test_server_background.test_background_transaction_locks_the_row_the_request_wrote, {}),
    (test_server_retries.test_retried_serializable_increments_all_land, {}),
    (test_server_retries.test_without_retries_conflicts_fail_and_nothing_is_half_applied, {}),
]


@pytest.fixture(scope="module")
def pgbouncer_url() -> Iterator[str]:
    server_url = require_server("postgres")
    require_pgbouncer()
    with run_pgbouncer(server_url, pool_size=5) as url:
        yield url.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("scenario", "arguments"),
    SCENARIOS,
    ids=[f"{test.__name__}{arguments or ''}" for test, arguments in SCENARIOS],
)
def test_scenario_through_pgbouncer(
    probe_servers: ProbeServers,
    pgbouncer_url: str,
    flavour: str,
    scenario: Callable[..., None],
    arguments: dict[str, Any],
) -> None:
    direct_url = require_server("postgres")

    def probe(profile: str = "default") -> ProbeServer:
        return probe_servers.get(
            "postgres", direct_url, f"pgbouncer-{profile}", app_url=pgbouncer_url
        )

    available = {"probe": probe, "flavour": flavour, "backend": "postgres", **arguments}
    wanted = inspect.signature(scenario).parameters
    scenario(**{name: available[name] for name in wanted})
