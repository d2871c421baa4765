"""Real Celery worker processes for tests, against the real Redis and pytest-django's test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from kombu import Exchange, Queue

from worker import app

REPO_ROOT = Path(__file__).resolve().parents[1]


def database_url(database: dict) -> str:
    """The URL of the database this test process uses (pytest-django's test database)."""
    auth = quote(database["USER"], safe="")
    if database["PASSWORD"]:
        auth += ":" + quote(database["PASSWORD"], safe="")
    return f"postgres://{auth}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


class RealWorker:
    """`celery worker` in a process group of its own, consuming one queue."""

    def __init__(self, queue: str, log: Path, *, pool: str = "solo"):
        self.queue, self.log, self.pool = queue, log, pool
        self.nodename = f"{queue}-{time.monotonic_ns()}@localhost"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RealWorker":
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "berth.settings.test",
            "DATABASE_URL": database_url(connection.settings_dict),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--pool",
            self.pool,
            "--concurrency",
            "1",
            "--queues",
            self.queue,
            "--hostname",
            self.nodename,
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_answering()
        return self

    def _wait_until_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the worker exited with {self.process.returncode}:\n{self.logs()}"
            if app.control.ping(destination=[self.nodename], timeout=0.5):
                return
        pytest.fail(f"the worker did not answer within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or an OOM kill would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """A warm shutdown, as `docker stop` or honcho would ask; killed if it does not finish."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def forget_queue(queue: str) -> None:
    """Remove what the broker keeps for the test queue, in the Redis a developer's Berth shares."""
    with app.connection_for_write() as broker:
        # The queue as Celery creates a missing one; declared here so that delete() knows its binding.
        bound = Queue(queue, Exchange(queue), routing_key=queue)(broker.default_channel)
        bound.declare()
        bound.delete()
