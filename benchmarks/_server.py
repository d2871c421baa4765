"""Processes the benchmarks start, the HTTP servers they wait for, and the databases they name (not a
benchmark: its name starts with "_").

Shared by api_list_apps and usage_api (gunicorn started as in production) and the deploy-engine benchmarks
(Berth's Celery worker, beat and event follower; containers polled until they answer). Every process is
started in its own session, so it and its children stop together as one process group.
"""

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POSTGRES = "postgres://postgres@127.0.0.1:5432"


def production_env(database: str, **extra: str) -> dict[str, str]:
    """Berth's production settings on a benchmark's database, with the environment they require: a
    fresh secret and field key, plain HTTP on 127.0.0.1, and cache keys apart from a developer's."""
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "berth.settings.prod",
        "DATABASE_URL": f"{POSTGRES}/{database}",
        "BERTH_SECRET_KEY": secrets.token_urlsafe(38)[:50],
        "BERTH_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "BERTH_HTTPS": "false",
        "BERTH_ALLOWED_HOSTS": "127.0.0.1",
        "BERTH_CACHE_PREFIX": "berth-bench",
        **extra,
    }


def database_name(default: str) -> str:
    """A benchmark's PostgreSQL database; `BERTH_BENCH_DB_SUFFIX` gives each engineer sharing a server their own."""
    suffix = os.environ.get("BERTH_BENCH_DB_SUFFIX", "")
    return f"{default}_{suffix}" if suffix else default


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_group(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a command in its own process group, its output (both streams) in `log`."""
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_group(pgid: int, grace_s: float = 20.0) -> None:
    """SIGTERM a process group the benchmark started, then SIGKILL what is left after `grace_s`."""
    for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-pgid, os.WNOHANG)  # reap, so an exited leader does not linger as a zombie
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def http_ok(address: str, port: int, path: str, timeout: float = 1.0) -> bool:
    """One GET on a fresh connection: did it answer 200?"""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_http(
    address: str,
    port: int,
    path: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.01,
    process: subprocess.Popen | None = None,
) -> float | None:
    """Poll until the first 200; the wall-clock time (time.time()) it came, or None on timeout. Gives up at
    once if `process` (the server being waited for) has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return None
        if http_ok(address, port, path, timeout=2.0):
            return time.time()
        time.sleep(interval_s)
    return None


def gunicorn_start(
    port: int, workers: int, env: dict[str, str], log: Path, extra_args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, list[str]]:
    """Gunicorn as the Procfile starts it (the virtualenv's gunicorn, sync workers, access log on), waited
    for until /healthz answers; returns the process and its command line."""
    command = [
        *(str(Path(sys.executable).with_name("gunicorn")), "berth.wsgi", "--pythonpath", "platform,."),
        *("--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", *extra_args),
    ]
    server = start_group(command, env, log)
    if wait_http("127.0.0.1", port, "/healthz", timeout_s=60, interval_s=0.2, process=server) is None:
        stop_group(server.pid)
        raise RuntimeError(f"gunicorn did not answer /healthz (exit code {server.poll()}); see {log}")
    return server, command


def command_line(command: list[str], port: int) -> str:
    """How a gunicorn command is reported: without the virtualenv's path or the port of the day."""
    return " ".join(["gunicorn", *command[1:]]).replace(str(port), "<port>")
