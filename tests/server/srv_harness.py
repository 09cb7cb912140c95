"""Run an ASGI app in a real uvicorn process on loopback, and always stop it.

In-process transports (TestClient, httpx's ASGITransport) deliver the response only after the
app returns, so they hide what happens between the first byte and the end of the request:
these tests need real sockets and a real server.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from srv_schema import make_metadata

APPS_DIR = Path(__file__).parent / "apps"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 15.0


@dataclass
class UvicornServer:
    """A running uvicorn process and the file its output goes to."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self, since: int = 0) -> str:
        """The server's output (from byte offset ``since``)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_env(env: Mapping[str, str]) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SRV_"))}
    inherited.update(env)
    inherited["SRV_PARENT_PID"] = str(os.getpid())
    inherited["PYTHONUNBUFFERED"] = "1"
    return inherited


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, ready_path: str) -> bool:
    """True once the server answers; False when the process died first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.get(ready_path).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"uvicorn did not answer {ready_path} within {STARTUP_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # graceful: the app's lifespan shutdown runs
    try:
        process.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(SHUTDOWN_TIMEOUT)


@contextmanager
def run_uvicorn(
    app: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    ready_path: str = "/healthz",
    workdir: Path | None = None,
) -> Iterator[UvicornServer]:
    """Start ``python -m uvicorn app`` (an ``apps/`` module) on a free loopback port, wait
    until ``ready_path`` answers 200, yield it, and stop it on the way out, whatever happens."""
    for _attempt in range(3):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "uvicorn", app,
            "--app-dir", str(APPS_DIR),
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
            "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                env=_server_env(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir or log_path.parent,
            )
        server = UvicornServer(base_url=base_url, process=process, log_path=log_path)
        try:
            if _wait_until_ready(process, base_url, ready_path):
                break
        except BaseException:
            _stop(process)
            raise
        if "address already in use" not in server.log_text().lower():
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{server.log_text()}")
    else:
        raise RuntimeError(f"no free port after 3 attempts:\n{server.log_text()}")
    try:
        yield server
    finally:
        _stop(process)


PROFILES: dict[str, dict[str, str]] = {
    # Room to spare: these tests are about correctness, not exhaustion.
    "default": {
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "10",
        "DATABASE_POOL_TIMEOUT": "10",
        "DATABASE_PING_AFTER_IDLE": "0.5",
    },
    # B1: a small pool and far more concurrent requests than connections or threads.
    "small_pool": {
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "60",
    },
    # D2: requests that run again queue for their connection again; on a busy machine the
    # last of 100 conflicting ones may wait long, and would be answered 503 after 10 s.
    "serial": {
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "120",
    },
    # G1: metrics under load; more concurrent requests than connections.
    "metrics": {
        "DATABASE_POOL_SIZE": "3",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "30",
        "DATABASE_PROMETHEUS": "true",
        "DATABASE_QUERY_STATS": "true",
    },
    # A2: the work of a request whose client went away is committed all the same.
    "commit_abandoned": {
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "10",
        "DATABASE_POOL_TIMEOUT": "10",
        "DATABASE_ROLLBACK_ON_DISCONNECT": "false",
    },
    # B2: an exhausted pool must answer 503 quickly.
    "short_wait": {
        "DATABASE_POOL_SIZE": "2",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "0.5",
    },
}


# F4: each profile once more, through PgBouncer in transaction pooling mode.
PROFILES.update(
    {f"pgbouncer-{name}": {**env, "DATABASE_PGBOUNCER": "true"} for name, env in PROFILES.items()}
)


@dataclass
class ProbeServer:
    """The probe app running on one database."""

    backend: str
    url: str
    prefix: str
    server: UvicornServer

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def pool(self) -> dict[str, object]:
        response = httpx.get(f"{self.base_url}/debug/pool", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def wait_pool_idle(self, timeout: float = 10.0) -> dict[str, object]:
        """Poll until no connection is checked out (handlers still finishing after their
        client left may hold one for a moment); return the last state."""
        deadline = time.monotonic() + timeout
        state = self.pool()
        while (state["sync"] or state["async"]) and time.monotonic() < deadline:
            time.sleep(0.05)
            state = self.pool()
        return state


class ProbeServers:
    """Starts probe servers on demand and stops them all at the end of the session."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._running: dict[tuple[str, str], ProbeServer] = {}
        self._stack = ExitStack()

    def get(
        self, backend: str, database_url: str, profile: str, app_url: str | None = None
    ) -> ProbeServer:
        """The probe app on ``database_url``; ``app_url``: the URL the app connects to, when
        not that one (a pooler in front of it)."""
        key = (backend, profile)
        if key not in self._running:
            self._running[key] = self._start(backend, database_url, profile, app_url)
        return self._running[key]

    def _start(
        self, backend: str, database_url: str, profile: str, app_url: str | None
    ) -> ProbeServer:
        prefix = f"srv_{secrets.token_hex(3)}_"
        if backend == "sqlite":
            database_url = f"sqlite:///{self._workdir / (prefix + 'probe.db')}"
        metadata = make_metadata(prefix, make_url(database_url).get_backend_name())
        engine = create_engine(database_url)
        self._stack.callback(engine.dispose)
        metadata.create_all(engine)
        self._stack.callback(metadata.drop_all, engine)
        env = {"DATABASE_URL": app_url or database_url, "SRV_PREFIX": prefix, **PROFILES[profile]}
        log_path = self._workdir / f"{prefix}{backend}-{profile}.log"
        server = self._stack.enter_context(run_uvicorn("srv_probe_app:app", env, log_path))
        return ProbeServer(backend=backend, url=database_url, prefix=prefix, server=server)

    def close(self) -> None:
        self._stack.close()
