"""Real PostgreSQL streaming replication on loopback, for the tests and the benchmarks.

A primary cluster and a replica cloned from it with ``pg_basebackup -R``, made with Debian's
``pg_createcluster`` / ``pg_ctlcluster`` (they need root) on ports 5441-5449, under names that
start with ``ssr`` and end with a random suffix. `drop_leftovers` drops what an earlier, killed
run left; `build_pair` drops its clusters when it ends, on failure too. No pytest here.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

PREFIX = "ssr"
PRIMARY_PORT = 5441
REPLICA_PORT = 5442
DATABASE = "sessionscope"
TOOLS = ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "pg_lsclusters", "pg_basebackup")

SETTINGS = (
    "wal_level=replica",
    "max_wal_senders=6",
    "hot_standby=on",
    "listen_addresses = '127.0.0.1'",
    "max_connections=80",
    "shared_buffers=16MB",
    # Test clusters: durability is not under test, speed on a busy machine is.
    "fsync=off",
    "full_page_writes=off",
)


def server_version() -> str:
    """The newest PostgreSQL server installed (Debian's layout), or ``""``."""
    versions = sorted(
        (path.name for path in Path("/usr/lib/postgresql").glob("*") if path.name.isdigit()),
        key=int,
    )
    return versions[-1] if versions else ""


def tools_problem() -> str | None:
    """Why real replication cannot be built here, or ``None``."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian's postgresql-common and a server)"
    if not server_version():
        return "no PostgreSQL server under /usr/lib/postgresql"
    if os.geteuid() != 0:
        return "pg_createcluster for another user's clusters needs root"
    return None


def _run(*command: str, timeout: float = 120) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


@dataclasses.dataclass
class Cluster:
    name: str
    port: int
    version: str

    @property
    def data(self) -> Path:
        return Path("/var/lib/postgresql") / self.version / self.name

    def create(self, settings: tuple[str, ...] = SETTINGS) -> None:
        """``pg_createcluster``, with ``settings`` (`SETTINGS` by default) in its ``conf.d``."""
        _run(
            "pg_createcluster", self.version, self.name, "-p", str(self.port),
            "--", "--auth-local=trust", "--auth-host=trust", "--no-sync",
        )  # fmt: skip
        (self.etc / "conf.d" / "replication.conf").write_text("\n".join(settings) + "\n")

    @property
    def etc(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name

    def url(self, driver: str = "psycopg", database: str = DATABASE) -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, action: str, *options: str) -> None:
        _run(
            "pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action,
            *options,
        )  # fmt: skip

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")

    def start_if_stopped(self) -> None:
        status = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "status"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if status.returncode != 0:
            self.start()

    def promote(self) -> None:
        self.ctl("promote")

    def execute(self, sql: str, database: str = DATABASE) -> Any:
        """Run one statement in autocommit on this cluster; its first value."""
        engine = create_engine(self.url(database=database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                result = connection.execute(text(sql))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()


def drop_cluster(version: str, name: str) -> None:
    """``pg_dropcluster --stop``, then whatever a half-made cluster left behind."""
    subprocess.run(
        ["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=60, check=False
    )
    for leftover in (Path("/etc/postgresql"), Path("/var/lib/postgresql")):
        shutil.rmtree(leftover / version / name, ignore_errors=True)


def drop_leftovers(ports: range) -> None:
    """Drop the clusters an earlier, killed run left on ``ports`` (names that start with
    ``ssr`` and end with the port), so that the tests and the benchmarks, on other ports,
    never drop each other's clusters."""
    names = set()
    for line in _run("pg_lsclusters", "--no-header").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].startswith(PREFIX):
            names.add((fields[0], fields[1]))
    for root in (Path("/etc/postgresql"), Path("/var/lib/postgresql")):
        for path in root.glob(f"*/{PREFIX}*"):
            names.add((path.parent.name, path.name))
    for version, name in sorted(names):
        if any(name.endswith(str(port)) for port in ports):
            drop_cluster(version, name)


def create_primary(name: str, port: int) -> Cluster:
    cluster = Cluster(name, port, server_version())
    cluster.create()
    cluster.start()
    _wait_until_answering(cluster, "postgres")
    cluster.execute(f"CREATE DATABASE {DATABASE}", database="postgres")
    return cluster


MAKE_REPLICA = Path(__file__).parent.parent.parent / "docs_src" / "replicas" / "make_replica.sh"
"""The commands the docs give for a development replica; the tests build theirs with them."""


def create_replica(primary: Cluster, name: str, port: int) -> Cluster:
    """A streaming replica of ``primary``, made by `MAKE_REPLICA`: ``pg_basebackup -R`` into
    an empty data directory, registered with a copy of the primary's configuration."""
    replica = Cluster(name, port, primary.version)
    settings = {
        "VERSION": primary.version,
        "PRIMARY": primary.name,
        "PRIMARY_PORT": str(primary.port),
        "REPLICA": name,
        "REPLICA_PORT": str(port),
    }
    done = subprocess.run(
        ["sh", str(MAKE_REPLICA)],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{MAKE_REPLICA.name} failed ({done.returncode}): {done.stderr}")
    _wait_until_answering(replica, DATABASE)
    return replica


def _wait_until_answering(cluster: Cluster, database: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        engine = create_engine(cluster.url(database=database), connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            engine.dispose()


def wait_for_replay(primary: Cluster, replica: Cluster, timeout: float = 30) -> None:
    """Wait until ``replica`` has replayed everything ``primary`` has written so far."""
    target = primary.execute("SELECT pg_current_wal_insert_lsn()::text")
    deadline = time.monotonic() + timeout
    while not replica.execute(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


@dataclasses.dataclass
class Replication:
    primary: Cluster
    replica: Cluster
    suffix: str


def build_pair(primary_port: int, replica_port: int) -> Iterator[Replication]:
    """A primary and its streaming replica, dropped when the generator ends."""
    suffix = secrets.token_hex(3)
    names = [f"{PREFIX}{suffix}p{primary_port}", f"{PREFIX}{suffix}r{replica_port}"]
    try:
        primary = create_primary(names[0], primary_port)
        replica = create_replica(primary, names[1], replica_port)
        yield Replication(primary, replica, suffix)
    finally:
        # By name: a cluster whose creation failed half-way goes too.
        for name in reversed(names):
            drop_cluster(server_version(), name)


def failover_url(pair: Replication, driver: str) -> str:
    """A libpq-style multi-host URL naming both servers; only the one that accepts writes is
    used (``target_session_attrs=read-write``)."""
    return (
        f"postgresql+{driver}://postgres@/{DATABASE}?host=127.0.0.1:{pair.primary.port}"
        f"&host=127.0.0.1:{pair.replica.port}&target_session_attrs=read-write"
    )
