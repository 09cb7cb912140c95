"""The example service behind PgBouncer, configured only by the environment as outside tooling
does: ``DATABASE_URL`` pointing at PgBouncer and ``DATABASE_PGBOUNCER=true`` (and a
``DATABASE_STATEMENT_TIMEOUT``). Real commits through a real PgBouncer in transaction mode;
the rows are deleted afterwards."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sessionscope_demo import ServiceSettings, create_app

from ..pgbouncer import require_pgbouncer, run_pgbouncer
from .conftest import FAST_HASHING, delete_rows
from .service_helpers import new_item, new_user

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("sessionscope_url", ["postgres"], indirect=True)
def test_the_service_runs_behind_pgbouncer_from_the_environment(
    sessionscope_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_pgbouncer()
    with run_pgbouncer(sessionscope_url, pool_size=2) as bounced:
        monkeypatch.setenv("DATABASE_URL", bounced.render_as_string(hide_password=False))
        monkeypatch.setenv("DATABASE_PGBOUNCER", "true")
        monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT", "5")
        settings = ServiceSettings(**FAST_HASHING)  # type: ignore[arg-type]
        config = settings.database_config()
        assert config.pgbouncer
        assert config.statement_timeout == 5
        app = create_app(settings)
        try:
            with TestClient(app) as client:
                for number in range(8):  # past psycopg's prepare threshold
                    user = new_user(client)
                    item = new_item(client, user["id"], name=f"item {number}")
                    read = client.get(f"/items/{item['id']}")
                    assert read.status_code == 200, read.text
                    assert client.get("/readyz").status_code == 200
        finally:
            delete_rows(sessionscope_url)
