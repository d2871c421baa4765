"""What the log benchmarks (logs_store, logs_throughput) share, not a benchmark (its name starts with "_").

A Redis server of their own (`redis-server --save ''` on a free port, in its own process group), so the
figures count only the benchmark's keys and commands, and a shared Redis is never loaded or flushed;
the CPU seconds of one process; and realistic log lines.
"""

import contextlib
import os
import random
import shutil
import socket
import time
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server


class OwnRedis:
    """`redis-server` on a free loopback port, no persistence; its working directory (for a SAVE) under out/."""

    def __init__(self, name: str):
        self.name = name
        self.port = _server.free_port()
        self.directory = bench.OUT / f"{name}-redis"
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "OwnRedis":
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed")
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        command = [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self.directory), "--dbfilename", "dump.rdb"),
        ]
        self.process = _server.start_group(command, dict(os.environ), bench.OUT / f"{self.name}-redis.log")
        bench.record_pgid(self.name, self.process.pid)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {bench.OUT / f'{self.name}-redis.log'}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        if self.process is not None:
            _server.stop_group(self.process.pid, grace_s=5)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _ticks(stat: Path) -> int:
    # After "pid (comm)": state ppid pgrp session … utime (12th) stime (13th)
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads) so far."""
    try:
        return _ticks(Path(f"/proc/{pid}/stat")) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


# What apps print: access-log lines from two web replicas and a worker's job lines, 60 to 200 characters,
# one in a hundred saying "timeout" (the rare search term).
_PATHS = ("/", "/api/items", "/api/items/{n}", "/api/orders/{n}/lines", "/static/app.{n}.js", "/healthz", "/login")
_JOBS = ("send_invoice", "resize_image", "sync_inventory", "rebuild_search_index", "charge_card")


def sample_line(rng: random.Random, process_type: str) -> str:
    n = rng.randint(1, 99_999)
    request_id = f"{rng.getrandbits(64):016x}"
    if rng.random() < 0.01:
        return f"ERROR upstream timeout after 30000 ms talking to db-{n % 4}.internal:5432 request_id={request_id}"
    if process_type == "worker":
        job = rng.choice(_JOBS)
        return f"INFO [{job}] job {n} done in {rng.randint(1, 4000)} ms (queue default, attempt 1) id={request_id}"
    path = rng.choice(_PATHS).format(n=n)
    status = rng.choices((200, 201, 304, 404, 500), (80, 5, 8, 6, 1))[0]
    return (
        f'10.0.{n % 256}.{n % 251} - - "GET {path} HTTP/1.1" {status} {rng.randint(90, 40_000)} '
        f'{rng.randint(1, 900)}ms "Mozilla/5.0" request_id={request_id}'
    )
