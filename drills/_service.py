"""The example service under drill: ``sessionscope-demo serve`` (migrations, then uvicorn) in a
process of its own on a loopback port, its output captured to a file of the run's log
directory; and the databases it runs on besides the drill cluster (SQLite, and the shared
PostgreSQL and MariaDB servers, in databases of the drills' own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import log_dir, service_env
from sqlalchemy import create_engine, make_url, text

from sessionscope import Database
from sessionscope_demo.migrate import VERSION_TABLE, current_revision, downgrade

FAST_HASHING = {
    # Argon2 at its cheapest: the drills load the database, not the password hasher.
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "1024",
    "PASSWORD_HASH_PARALLELISM": "1",
}

POSTGRES_URL = os.environ.get(
    "DRILLS_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test_drills"
)
MARIADB_URL = os.environ.get(
    "DRILLS_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test_drills"
)


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **options: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, **options)  # type: ignore[arg-type]


def _command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("sessionscope-demo")
    if script.exists():
        return [str(script), "serve", "--port", str(port)]
    code = "from sessionscope_demo.command import run; run()"
    return [sys.executable, "-c", code, "serve", "--port", str(port)]


@contextlib.contextmanager
def serve(
    database_url: str, port: int, label: str, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """Serve the example service on ``127.0.0.1:port`` until the block ends.

    Its stdout and stderr go to ``<log dir>/<label>.log``; it is stopped with SIGINT (uvicorn's
    graceful stop), killed after 15 s."""
    log = log_dir() / f"{label}.log"
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")
    }
    environment.update(FAST_HASHING)
    environment.update({"DATABASE_URL": database_url, "LOG_LEVEL": "info"})
    environment.update(env or {})
    environment.update(service_env())
    with log.open("ab") as out:
        process = subprocess.Popen(
            _command(port), env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(service)
        yield service
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(service: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the service exited with {service.process.returncode}; see {service.log}"
            )
        try:
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service was not ready within {timeout} s; see {service.log}")


def sync_url(url: str) -> str:
    """The sync flavour of a service URL, for the drills' own checks."""
    parsed = make_url(url)
    driver = {"postgresql": "psycopg", "mysql": "pymysql", "sqlite": "pysqlite"}[
        parsed.get_backend_name()
    ]
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(
        hide_password=False
    )


def scalar(url: str, sql: str, **params: object) -> object:
    """One value from the service's database, read on a connection of the drill's own."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def ensure_server_database(url: str) -> None:
    """Create the database of a shared-server URL when it is missing."""
    parsed = make_url(sync_url(url))
    name = parsed.database
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                found = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if found is None:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
    elif parsed.get_backend_name() == "mysql":
        # Connected to the server's own schema: URL.set(database=None) would keep the name.
        engine = create_engine(parsed.set(database="mysql"))
        try:
            with engine.connect() as connection:
                connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
        finally:
            engine.dispose()


def drop_schema(url: str) -> None:
    """Migrate the service's schema down and drop Alembic's table: the database as before."""
    db = Database(sync_url(url))
    try:
        if current_revision(db) is not None:
            downgrade(db, "base")
        with db.sync_engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    finally:
        db.sync_engine.dispose()


@contextlib.contextmanager
def backend_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of ``backend`` (``sqlite``, ``postgres``, ``mariadb``) for
    the service; its schema is dropped at the end."""
    if backend == "sqlite":
        path = directory / f"drill-{time.monotonic_ns()}.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    url = POSTGRES_URL if backend == "postgres" else MARIADB_URL
    ensure_server_database(url)
    drop_schema(url)
    try:
        yield url
    finally:
        drop_schema(url)
