"""The drills' own PostgreSQL cluster: made with ``pg_createcluster`` on port 5460, dropped at
the end, so that no drill ever stops or restarts the server other tests use.

It is built with the replica tests' helpers (`tests.replicas.clusters`). The service connects
as the role ``drill`` with a password and SCRAM authentication (the secrets drill looks for
that password in every log); the drills' own checks connect as ``postgres`` (trust, loopback).
The runner makes one cluster for the whole run and hands it to each drill through
`CLUSTER_ENV`; a drill run alone makes its own. Each drill works in a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from _common import REPO  # noqa: F401  (puts the repository on sys.path)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.replicas.clusters import (
    PREFIX,
    SETTINGS,
    Cluster,
    drop_cluster,
    drop_leftovers,
    server_version,
    tools_problem,
)

PORT = 5460
PORTS = range(5460, 5470)
ROLE = "drill"
CLUSTER_ENV = "DRILLS_CLUSTER"
"""``name:port:password`` of a cluster the runner made; the drill then neither makes nor
drops one."""

DRILL_SETTINGS = (
    *SETTINGS,
    "max_connections=120",
    "password_encryption='scram-sha-256'",
    # Every statement's parameters would be in the server's log: not the service's logs, which
    # the secrets drill reads, but kept quiet all the same.
    "log_min_error_statement=panic",
)


@dataclass
class DrillCluster:
    cluster: Cluster
    password: str

    @property
    def port(self) -> int:
        return self.cluster.port

    def url(self, database: str, driver: str = "asyncpg") -> str:
        """The service's URL: the password role, through SCRAM."""
        return f"postgresql+{driver}://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin_url(self, database: str = "postgres") -> str:
        return self.cluster.url(driver="psycopg", database=database)

    def execute(
        self, sql: str, database: str = "postgres", params: dict[str, Any] | None = None
    ) -> Any:
        """One statement as ``postgres``, in autocommit; its rows (or ``None``)."""
        engine = create_engine(self.admin_url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                result = connection.execute(text(sql), params or {})
                return result.all() if result.returns_rows else None
        finally:
            engine.dispose()

    def fresh_database(self, name: str) -> str:
        """An empty database ``name`` owned by the password role (an older one is dropped)."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop_immediately(self) -> None:
        """``pg_ctlcluster stop -m immediate``: every backend dies at once, as in a crash."""
        self.cluster.ctl("stop", "-m", "immediate")

    def start(self) -> None:
        self.cluster.start()

    def set_setting(self, name: str, value: str | None) -> None:
        """``ALTER SYSTEM SET`` (or ``RESET`` for ``None``) and reload the configuration."""
        if value is None:
            self.execute(f"ALTER SYSTEM RESET {name}")
        else:
            self.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        self.execute("SELECT pg_reload_conf()")

    def terminate(self, database: str, where: str = "true", *, wait: float = 0) -> int:
        """``pg_terminate_backend`` for the backends of ``database`` (never another cluster's,
        never the caller's own) that match ``where``; how many. With ``wait`` (seconds), each
        call returns once its backend has exited (PostgreSQL 14's ``timeout`` argument)."""
        rows = self.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, :timeout))"
            " FROM pg_stat_activity"
            f" WHERE datname = :database AND pid <> pg_backend_pid() AND ({where})",
            params={"database": database, "timeout": int(wait * 1000)},
        )
        return int(rows[0][0])

    def backends(self, database: str) -> dict[str, int]:
        """How many backends of ``database`` are in each state."""
        rows = self.execute(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
            " WHERE datname = :database AND pid <> pg_backend_pid() GROUP BY 1",
            params={"database": database},
        )
        return {state: int(count) for state, count in rows}


def _password_auth(cluster: Cluster, password: str) -> None:
    """The role ``drill`` with ``password``; SCRAM for it on loopback (first line of pg_hba)."""
    hba = cluster.etc / "pg_hba.conf"
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'", database="postgres")
    cluster.execute("SELECT pg_reload_conf()", database="postgres")


def _wait_until_answering(cluster: Cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.execute("SELECT 1", database="postgres")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def drill_cluster() -> Iterator[DrillCluster]:
    """The run's cluster (`CLUSTER_ENV`), or one made here and dropped at the end."""
    shared = os.environ.get(CLUSTER_ENV)
    if shared:
        name, port, password = shared.split(":", 2)
        cluster = Cluster(name, int(port), server_version())
        cluster.start_if_stopped()
        _wait_until_answering(cluster)
        yield DrillCluster(cluster, password)
        return
    with own_cluster() as made:
        yield made


@contextlib.contextmanager
def own_cluster(port: int = PORT) -> Iterator[DrillCluster]:
    problem = tools_problem()
    if problem is not None:
        raise RuntimeError(f"the drills need a PostgreSQL cluster of their own: {problem}")
    drop_leftovers(PORTS)
    name = f"{PREFIX}drills{port}"
    password = secrets.token_hex(16)
    try:
        cluster = Cluster(name, port, server_version())
        cluster.create(DRILL_SETTINGS)
        cluster.start()
        _wait_until_answering(cluster)
        _password_auth(cluster, password)
        yield DrillCluster(cluster, password)
    finally:
        drop_cluster(server_version(), name)


def shared_env(cluster: DrillCluster) -> str:
    """The value of `CLUSTER_ENV` that hands ``cluster`` to the drills."""
    return f"{cluster.cluster.name}:{cluster.port}:{cluster.password}"


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
