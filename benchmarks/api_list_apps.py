"""GET /api/v1/orgs/<slug>/apps/ (pages of 100) in an org with 10,000 apps, 20 concurrent clients.

The server is gunicorn with the production settings, against its own database (berth_bench),
which is dropped and recreated each run and dropped again at the end. Run through benchmarks/run.py;
`python benchmarks/api_list_apps.py seed` is the seeding step, run in a subprocess with the
server's environment so this process never loads Django.
"""

import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import _server  # benchmarks/ is sys.path[0] both under run.py and as a script

NAME = "api_list_apps"

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "out" / f"{NAME}-gunicorn.log"
SERVER = _server.POSTGRES
DATABASE = _server.database_name("berth_bench")
ORG_SLUG = "bench"
APPS = 10_000
PAGE_SIZE = 100
CLIENTS = 20
WARMUP_SECONDS = 5.0
DURATION_SECONDS = 20.0
# A ceiling on the request count as well as the time, whatever the machine.
MAX_REQUESTS = 200_000
REQUEST_TIMEOUT = 30.0
# High enough never to answer 429 during the run (the production default is 1200/min).
THROTTLE_RATE = "1000000/min"


def run(
    *,
    workers: int | None = None,
    gunicorn_args: tuple[str, ...] = (),
    clients: int = CLIENTS,
    duration: float = DURATION_SECONDS,
    throttle_rate: str = THROTTLE_RATE,
) -> dict:
    """Seed, serve, measure, clean up. The keyword arguments are for comparing configurations by hand."""
    # Gunicorn's advice for sync workers: (2 x cores) + 1, enough to keep the cores busy while some wait on I/O.
    workers = workers or 2 * _cores() + 1
    port = _server.free_port()
    env = _server_env(throttle_rate)
    server = None
    try:
        postgresql = _database_recreate()
        _quietly([sys.executable, "manage.py", "migrate", "--noinput"], env)
        seeded = json.loads(_quietly([sys.executable, __file__, "seed"], env).splitlines()[-1])
        server, command = _server.gunicorn_start(port, workers, env, LOG, gunicorn_args)
        measured = _measure(server, f"http://127.0.0.1:{port}", seeded["token"], clients, duration)
    finally:
        if server is not None:
            _server.stop_group(server.pid, grace_s=30)
        _database_drop()
    return {
        "apps": APPS,
        "page_size": PAGE_SIZE,
        "clients": clients,
        "gunicorn": _server.command_line(command, port),
        "gunicorn_workers": workers,
        "throttle_rate": throttle_rate,
        "queries_per_request": seeded["queries_per_request"],
        "postgresql": postgresql,
        **measured,
    }


def _measure(server: subprocess.Popen, base_url: str, token: str, clients: int, duration: float) -> dict:
    load = _Load(base_url, token, clients)
    load.run(WARMUP_SECONDS)
    cpu_before = _server_cpu(server.pid)
    measured = load.run(duration)
    per_request = _cpu_per_request(cpu_before, _server_cpu(server.pid), measured)
    # Below 100 %, the rest of the machine was busy with something else during the run.
    ours = sum(per_request.values()) * (measured["requests_ok"] + measured["errors"]) / 1000
    share = round(100 * ours / (measured["duration_s"] * _cores()), 1)
    return {**measured, "cpu_ms_per_request": per_request, "bench_cpu_pct_of_machine": share}


def _cores() -> int:
    return len(os.sched_getaffinity(0))


# --- database and seed --------------------------------------------------------------------------


def _server_env(throttle_rate: str) -> dict[str, str]:
    return _server.production_env(DATABASE, BERTH_THROTTLE_USER=throttle_rate)


def _maintenance(statement: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(DATABASE)))
        return connection.info.parameter_status("server_version")


def _database_recreate() -> str:
    _database_drop()
    return _maintenance("CREATE DATABASE {}")


def _database_drop() -> None:
    _maintenance("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def _quietly(command: list[str], env: dict[str, str]) -> str:
    """Run a setup step; its output is shown only if it fails."""
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done.stdout


def seed() -> dict:
    """One organization with APPS apps, its owner and the owner's API token; run inside Django."""
    import django

    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from berth.applications.models import App
    from berth.tenancy.models import User
    from berth.tenancy.services import api_token_create, organization_create

    owner = User.objects.create_user("bench@example.com")
    organization = organization_create(actor=owner, slug=ORG_SLUG, name="Benchmark")
    apps = (
        App(organization=organization, name=f"app-{n:05d}", description=f"Benchmark app {n}", created_by=owner)
        for n in range(APPS)
    )
    App.objects.bulk_create(apps, batch_size=2000)
    _, token = api_token_create(actor=owner, name="benchmark")
    with connection.cursor() as cursor:
        # What autovacuum would have done by the time an org has grown to 10,000 apps.
        cursor.execute("VACUUM ANALYZE")
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.get(f"/api/v1/orgs/{ORG_SLUG}/apps/")  # the token's first use writes last_used_at; count a later one
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/v1/orgs/{ORG_SLUG}/apps/", {"page_size": PAGE_SIZE, "page": 2})
    assert response.status_code == 200, response.content[:500]
    return {"token": token, "queries_per_request": len(queries.captured_queries)}


# --- load ---------------------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(reason)


class _Load:
    """CLIENTS threads, each with its own keep-alive httpx.Client, asking for random pages until time is up."""

    def __init__(self, base_url: str, token: str, clients: int):
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.clients = clients
        self.path = f"/api/v1/orgs/{ORG_SLUG}/apps/"
        self.pages = math.ceil(APPS / PAGE_SIZE)

    def run(self, duration: float) -> dict:
        start = threading.Barrier(self.clients + 1, timeout=60)
        cpu_before, busy_before = time.process_time(), _machine_ticks()
        with ThreadPoolExecutor(self.clients) as pool:
            futures = [pool.submit(self._client, n, duration, start) for n in range(self.clients)]
            start.wait()
            began = time.perf_counter()
            tallies = [future.result() for future in futures]
            elapsed = time.perf_counter() - began
        busy, total = (after - before for after, before in zip(_machine_ticks(), busy_before, strict=True))
        return _summary(tallies, elapsed, time.process_time() - cpu_before, busy / total if total else 0.0)

    def _client(self, n: int, duration: float, start: threading.Barrier) -> _Tally:
        import httpx

        rng, tally = random.Random(n), _Tally()
        limit = MAX_REQUESTS // self.clients
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=REQUEST_TIMEOUT) as client:
            start.wait()
            deadline = time.perf_counter() + duration
            while time.perf_counter() < deadline and len(tally.latencies) + tally.errors < limit:
                params = {"page_size": PAGE_SIZE, "page": rng.randint(1, self.pages)}
                began = time.perf_counter()
                try:
                    response = client.get(self.path, params=params)
                except httpx.HTTPError as error:
                    tally.fail(f"{type(error).__name__}: {error}")
                    continue
                latency = time.perf_counter() - began
                problem = _problem(response)
                if problem:
                    tally.fail(problem)
                else:
                    tally.latencies.append(latency)
        return tally


def _problem(response) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]}"
    if body.get("count") != APPS or len(body.get("results", ())) != PAGE_SIZE:
        return f"count {body.get('count')}, {len(body.get('results', ()))} results"
    return None


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _summary(tallies: list[_Tally], elapsed: float, client_cpu: float, busy: float) -> dict:
    ordered = sorted(latency for tally in tallies for latency in tally.latencies)
    if not ordered:
        raise RuntimeError(f"No request succeeded: {[s for t in tallies for s in t.error_samples][:5]}")

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 1)

    return {
        "duration_s": round(elapsed, 2),
        "requests_ok": len(ordered),
        "errors": sum(tally.errors for tally in tallies),
        "error_samples": [sample for tally in tallies for sample in tally.error_samples][:5],
        "requests_per_s": round(len(ordered) / elapsed, 1),
        "latency_ms": {
            "p50": ms(_percentile(ordered, 50)),
            "p90": ms(_percentile(ordered, 90)),
            "p99": ms(_percentile(ordered, 99)),
            "max": ms(ordered[-1]),
            "mean": ms(statistics.fmean(ordered)),
        },
        # The load generator shares the machine with the server: how much of it was busy, and how much was ours.
        "machine_cpu_busy_pct": round(100 * busy, 1),
        "client_cpu_s": client_cpu,
    }


# --- CPU accounting ------------------------------------------------------------------------------
# Requests per second depend on whatever else the machine is doing; CPU time per request much less so.


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _process_ticks() -> dict[int, tuple[int, int]]:
    """Process id -> (process group, user + system CPU ticks) of every process, from /proc/<pid>/stat."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks[int(stat.parent.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]))
    return ticks


def _server_cpu(group: int) -> dict[str, dict[int, int]]:
    """CPU ticks so far of gunicorn (its process group) and of the PostgreSQL backends serving the bench database."""
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        rows = connection.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [DATABASE])
        backends = {pid for (pid,) in rows}
    ticks = _process_ticks()
    return {
        "gunicorn": {pid: cpu for pid, (pgrp, cpu) in ticks.items() if pgrp == group},
        "postgres": {pid: cpu for pid, (_, cpu) in ticks.items() if pid in backends},
    }


def _cpu_per_request(before: dict, after: dict, measured: dict) -> dict[str, float]:
    requests = measured["requests_ok"] + measured["errors"]
    per_request = 1000 / os.sysconf("SC_CLK_TCK") / requests
    spent = {name: sum(cpu - before[name].get(pid, 0) for pid, cpu in after[name].items()) for name in after}
    return {
        **{name: round(ticks * per_request, 2) for name, ticks in spent.items()},
        "client": round(measured.pop("client_cpu_s") * 1000 / requests, 2),
    }


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    print(json.dumps(seed()))
