"""The web process as the Procfile starts it (gunicorn with uvicorn workers serving `berth.asgi`), on the test
database, for tests of what only a real ASGI server shows: live log tails, and requests served beside them.
Also a Redis of the tests' own for the log store, which a test may stop and start again.

Rows a test writes must be committed for the server to see them: use these with `transactional_db`.
"""

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from berth.logs import store

from .routers import free_port

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def procfile_web_command(port: int, workers: int) -> list[str]:
    """The Procfile's `web:` command, on another port and with as many workers as the test wants."""
    line = next(line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.removeprefix("web:"))
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = str(workers)
    command[0] = str(VENV_BIN / command[0])
    # Open tails would hold a stop for gunicorn's 30 s; the tests stop it at once.
    return [*command, "--graceful-timeout", "2"]


def database_url() -> str:
    db = settings.DATABASES["default"]
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class WebServer:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the test process dies, so a killed run leaves no server holding the
    test database (PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_web(tmp: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> WebServer:
    port = free_port()
    log = tmp / f"web-{port}.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "berth.settings.test",
        "DATABASE_URL": database_url(),
        "BERTH_LOG_REDIS_URL": settings.BERTH_LOG_REDIS_URL,
        "BERTH_LOG_HEARTBEAT_SECONDS": "1",
        **(env or {}),
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            procfile_web_command(port, workers),
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    server = WebServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, server.output()
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_web(server)
    raise AssertionError(f"the web process did not answer: {server.output()}")


def stop_web(server: WebServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="module")
def web_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WebServer]:
    """One ASGI web process (one worker, so "the same process" is certain) for a module's tests."""
    server = start_web(tmp_path_factory.mktemp("web"))
    yield server
    stop_web(server)


@dataclass
class OwnRedis:
    """A redis-server of the test's own (no persistence, like docker-compose's): it may be stopped."""

    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    """The log store in a Redis of this test's own: `store` writes there, and so does a web process
    started with `env={"BERTH_LOG_REDIS_URL": own_redis.url}`."""
    redis_server = OwnRedis(free_port(), tmp_path)
    redis_server.start()
    store.client.cache_clear()
    try:
        with override_settings(BERTH_LOG_REDIS_URL=redis_server.url):
            yield redis_server
    finally:
        store.client.cache_clear()
        redis_server.stop()
