"""Read replicas on real PostgreSQL streaming replication (F1, F2): routing, bookmarks,
lag and health; sync routes on psycopg, async routes on asyncpg."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionscope import Database, SessionScopeError

from .clusters import Replication, wait_for_replay
from .replica_app import make_app

pytestmark = pytest.mark.replicas

SERVED_BY = "x-served-by"
BOOKMARK = "x-db-bookmark"


def _database(replication: Replication, flavour: str, **options: Any) -> Database:
    driver = "psycopg" if flavour == "sync" else "asyncpg"
    options.setdefault("replica_check_interval", 0.1)
    return Database(
        replication.primary.url(driver),
        replicas=[replication.replica.url(driver)],
        served_by_header="X-Served-By",
        pool_size=4,
        **options,
    )


def _eventually(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _replica_serves(db: Database) -> bool:
    return all(status.healthy for status in db.replica_status())


# -- 1. what goes where ------------------------------------------------------------------------


def test_readonly_units_run_on_the_replica_and_the_rest_on_the_primary(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour)
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        readonly = client.get("/where")
        assert (readonly.json(), readonly.headers[SERVED_BY]) == (True, "replica 1")
        assert client.get("/where/transaction").json() is True
        # Everything else runs on the primary: a GET that may write, a forced primary read,
        # a writing route, and a writing route that locks rows.
        for method, path in [("GET", "/where/plain"), ("GET", "/where/primary")]:
            response = client.request(method, path)
            assert (response.json(), response.headers[SERVED_BY]) == (False, "primary"), path
        assert client.post("/where").json() is False
        note = client.post("/notes", json={"body": "locked"}).json()
        assert client.post(f"/notes/{note}/lock").json() is False
        # A read-only unit cannot lock rows on a replica: the error names the fix, and the
        # replica, which did nothing wrong, keeps serving.
        with pytest.raises(SessionScopeError, match=r"unit_of_work\(write=True\)"):
            client.get(f"/notes/{note}/lock")
        assert client.get("/where").headers[SERVED_BY] == "replica 1"


def test_safe_methods_mode_sends_every_get_to_the_replica(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour, replica_reads="safe_methods")
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        assert client.get("/where/plain").json() is True
        assert client.get("/where/primary").json() is False
        assert client.post("/where").json() is False


# -- 2. bookmarks with replay paused -----------------------------------------------------------


def test_a_bookmark_reads_its_write_while_replay_is_paused(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour, max_replica_lag=60)
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        replication.replica.execute("SELECT pg_wal_replay_pause()")
        try:
            created = client.post("/notes", json={"body": "fresh"})
            note, bookmark = created.json(), created.headers[BOOKMARK]
            with_bookmark = client.get(f"/notes/{note}", headers={BOOKMARK: bookmark})
            assert with_bookmark.headers[SERVED_BY] == "primary"
            assert with_bookmark.json() == {"body": "fresh", "in_recovery": False}
            # Without the bookmark the replica serves it, stale: it has not replayed the row.
            without = client.get(f"/notes/{note}")
            assert without.headers[SERVED_BY] == "replica 1"
            assert without.json() == {"body": None, "in_recovery": True}
        finally:
            replication.replica.execute("SELECT pg_wal_replay_resume()")

        def bookmarked_read_on_the_replica() -> bool:
            response = client.get(f"/notes/{note}", headers={BOOKMARK: bookmark})
            return response.headers[SERVED_BY] == "replica 1"

        _eventually(bookmarked_read_on_the_replica, "the caught-up replica serves the bookmark")
        response = client.get(f"/notes/{note}", headers={BOOKMARK: bookmark})
        assert response.json() == {"body": "fresh", "in_recovery": True}


# The app's routes use SQLAlchemy's execute(), which SQLModel's async session flags.
@pytest.mark.filterwarnings(r"ignore:(?s).*session\.exec\(\):DeprecationWarning")
def test_sqlmodel_sessions_carry_bookmarks_too(replication: Replication, flavour: str) -> None:
    db = _database(replication, flavour, session_class="sqlmodel", max_replica_lag=60)
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        replication.replica.execute("SELECT pg_wal_replay_pause()")
        try:
            created = client.post("/notes", json={"body": "modelled"})
            note, bookmark = created.json(), created.headers[BOOKMARK]
            response = client.get(f"/notes/{note}", headers={BOOKMARK: bookmark})
            assert response.headers[SERVED_BY] == "primary"
            assert response.json() == {"body": "modelled", "in_recovery": False}
        finally:
            replication.replica.execute("SELECT pg_wal_replay_resume()")


def test_a_malformed_bookmark_is_served_by_the_primary(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour)
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        response = client.get("/where", headers={BOOKMARK: "not-a-position"})
        assert response.headers[SERVED_BY] == "primary"


# -- 3. read-your-writes under replication -----------------------------------------------------

PAIRS = 200


@pytest.mark.parametrize("carrier", ["header", "cookie"])
def test_every_bookmarked_read_sees_the_write_before_it(
    replication: Replication, flavour: str, carrier: str
) -> None:
    options: dict[str, Any] = {"bookmark_cookie": "db_bookmark"} if carrier == "cookie" else {}
    db = _database(replication, flavour, **options)
    served: Counter[str] = Counter()
    stale = 0
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        for index in range(PAIRS):
            # A new client for each pair: only the bookmark links the read to the write.
            client.cookies.clear()
            created = client.post("/notes", json={"body": f"pair {index}"})
            assert created.status_code == 201
            if carrier == "cookie":
                assert "db_bookmark" in client.cookies
                read = client.get(f"/notes/{created.json()}")
            else:
                read = client.get(
                    f"/notes/{created.json()}", headers={BOOKMARK: created.headers[BOOKMARK]}
                )
            assert read.status_code == 200
            stale += read.json()["body"] != f"pair {index}"
            served[read.headers[SERVED_BY]] += 1
    print(f"\n{flavour}/{carrier}: {PAIRS} pairs, {stale} stale, served by {dict(served)}")
    assert stale == 0
    assert sum(served.values()) == PAIRS


# -- 4. a replica that stops and comes back ----------------------------------------------------


def test_reads_survive_a_replica_that_stops_and_return_when_it_is_back(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour)
    statuses: Counter[int] = Counter()
    served: list[str] = []
    stop = threading.Event()

    def load(client: TestClient) -> None:
        while not stop.is_set():
            response = client.get("/where")
            statuses[response.status_code] += 1
            served.append(response.headers.get(SERVED_BY, "?"))

    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        workers = [threading.Thread(target=load, args=(client,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            _eventually(lambda: "replica 1" in served, "reads reach the replica")
            replication.replica.stop()
            stopped_at = len(served)
            _eventually(lambda: "primary" in served[stopped_at:], "reads go to the primary")
            replication.replica.start()
            _eventually(lambda: _replica_serves(db), "the replica serves reads again")
            back_at = len(served)
            _eventually(lambda: "replica 1" in served[back_at:], "reads return to the replica")
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            replication.replica.start_if_stopped()
    assert set(statuses) == {200}, statuses


# -- 5. lag beyond the limit -------------------------------------------------------------------


def test_a_replica_further_behind_than_the_limit_is_skipped(
    replication: Replication, flavour: str
) -> None:
    db = _database(replication, flavour, max_replica_lag=0.5)
    with TestClient(make_app(db, flavour)) as client:
        _eventually(lambda: _replica_serves(db), "the replica serves reads")
        replication.replica.execute("SELECT pg_wal_replay_pause()")
        try:
            started = time.monotonic()
            # Writes for longer than the limit while the replica replays nothing.
            while time.monotonic() - started < 1.5:
                assert client.post("/notes", json={"body": "lagging"}).status_code == 201
                time.sleep(0.05)
            _eventually(lambda: not _replica_serves(db), "the lagging replica is skipped")
            (status,) = db.replica_status()
            assert status.reason is not None
            assert "behind the primary" in status.reason
            assert status.lag is not None
            assert status.lag > 0.5
            response = client.get("/where")
            assert (response.json(), response.headers[SERVED_BY]) == (False, "primary")
        finally:
            replication.replica.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay(replication.primary, replication.replica)
        _eventually(lambda: _replica_serves(db), "the replica serves reads again")
        assert client.get("/where").headers[SERVED_BY] == "replica 1"
