"""A real PgBouncer in transaction pooling mode in front of the test PostgreSQL server.

`run_pgbouncer` writes an ini file, starts ``pgbouncer`` on a free loopback port of 6432-6439
and stops it on the way out. The process also runs under ``timeout``, so it ends by itself
even if the test run is killed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL, make_url

PORTS = range(6432, 6440)
LIFETIME = 1800  # seconds: the longest a test session keeps one PgBouncer


def require_pgbouncer() -> None:
    """Skip when PgBouncer is not installed; under ``CI=true`` fail instead."""
    import pytest

    if pgbouncer_binary() is not None:
        return
    message = "pgbouncer is not installed (Debian package `pgbouncer`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: .ci/run installs it)", pytrace=False)
    pytest.skip(message)


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer",) if os.access(path, os.X_OK)), None
    )


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} for PgBouncer")


def _ini(server: URL, port: int, workdir: Path, pool_size: int) -> str:
    database = server.database
    return f"""\
[databases]
{database} = host={server.host or "127.0.0.1"} port={server.port or 5432} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
admin_users = {server.username or "postgres"}
stats_users = {server.username or "postgres"}
"""


@contextmanager
def run_pgbouncer(server_url: str, *, pool_size: int = 3) -> Iterator[URL]:
    """Run PgBouncer (transaction pooling, ``pool_size`` server connections) in front of the
    PostgreSQL server of ``server_url``; yield ``server_url`` pointed at PgBouncer."""
    binary = pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    server = make_url(server_url)
    workdir = Path(tempfile.mkdtemp(prefix="sessionscope-pgbouncer-"))
    user = server.username or "postgres"
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    command = ["timeout", str(LIFETIME), binary]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: it drops to the PostgreSQL account.
        account = pwd.getpwnam("postgres")
        os.chmod(workdir, 0o755)
        os.chown(workdir, account.pw_uid, account.pw_gid)
        command += ["-u", "postgres"]
    for _attempt in range(3):
        port = _free_port()
        ini = workdir / "pgbouncer.ini"
        ini.write_text(_ini(server, port, workdir, pool_size))
        os.chmod(ini, 0o644)
        process = subprocess.Popen(
            [*command, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        if _wait_listening(process, port):
            break
    else:
        raise RuntimeError(f"PgBouncer did not start: {_log(workdir)}")
    try:
        yield server.set(host="127.0.0.1", port=port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait(10)
    return False


def _log(workdir: Path) -> str:
    log = workdir / "pgbouncer.log"
    return log.read_text() if log.exists() else "(no log)"
