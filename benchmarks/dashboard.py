"""The tenant dashboard's heaviest pages: the organization home with 1,000 apps, and an app's overview
with 100 containers and 200 deployments, with their live updates.

Berth's issue asks for: server CPU per page (target ≤ 15 ms), p50/p99 with one client (target p99 ≤
100 ms) and with 20 concurrent clients (written down), live-update requests likewise, and the page
weight of the app overview (HTML + CSS + JS transferred, gzip; target ≤ 100 KB).

1. Drops and recreates the database berth_bench_dashboard, migrates it, and collects the static files
   with the production settings (hashed, pre-compressed names, served by WhiteNoise).
2. Seeds (in a child process that loads Django) an organization `bench` with 1,000 apps, each with a
   release, a succeeded deployment, a formation of one web container and that container running; and
   the app `big` with 200 releases, 200 deployments of 6 steps each, and 100 running containers over 4
   hosts; plus one usage record per container this month, so the cost column has something to add up.
   Then VACUUM ANALYZE, and counts each page's SQL queries with Django's test client.
3. Starts gunicorn as the Procfile does, with the production settings, signed in through a session made
   by `force_login` (the cookie is sent as a header).
4. For each page: 10 warm-up requests, then 200 in a row from one client (p50/p99, and the CPU time of
   gunicorn and of the PostgreSQL backends per request, from /proc), then 20 clients of 20 requests each
   (p50/p99, requests/s). Every answer must be a 200 that contains what the page is for.
5. Page weight: the overview's HTML gzip-compressed (as a compressing proxy sends it; Berth does not
   compress HTML itself, see benchmarks/results/dashboard.md) plus every stylesheet and script the
   page loads, as WhiteNoise sends them with `Accept-Encoding: gzip`.
6. Stops gunicorn and drops the database, whatever happened.

Run through benchmarks/run.py; `python benchmarks/dashboard.py seed` is its child.
"""

import gzip
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _server  # benchmarks/ is sys.path[0] both under run.py and as a script

NAME = "dashboard"
REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "out" / f"{NAME}-gunicorn.log"
DATABASE = _server.database_name("berth_bench_dashboard")
ORG = "bench"
APPS = 1000
BIG = "big"
BIG_CONTAINERS = 100
BIG_DEPLOYMENTS = 200
STEPS_PER_DEPLOYMENT = 6
HOSTS = 4
WARMUP = 10
SEQUENTIAL = 200
CLIENTS = 20
PER_CLIENT = 20
REQUEST_TIMEOUT = 30.0
TARGETS = {"cpu_ms": 15.0, "p99_ms_one_client": 100.0, "overview_weight_kb": 100.0}

# name -> (path, extra headers, text the answer must contain)
PAGES = {
    "org_home": (f"/orgs/{ORG}/", {}, "app-"),
    "org_home_page_20": (f"/orgs/{ORG}/?page=20", {}, "app-"),
    "org_home_search": (f"/orgs/{ORG}/?q=app-00", {}, "app-00"),
    "app_overview": (f"/orgs/{ORG}/apps/{BIG}/", {}, BIG),
    "app_live": (f"/orgs/{ORG}/apps/{BIG}/live/", {"HX-Request": "true"}, "web"),
}


def run() -> dict:
    port = _server.free_port()
    env = _server.production_env(DATABASE, BERTH_THROTTLE_USER="1000000/min")
    server = None
    try:
        postgresql = _database_recreate()
        _quietly([sys.executable, "manage.py", "migrate", "--noinput"], env)
        _quietly([sys.executable, "manage.py", "collectstatic", "--noinput", "--clear"], env)
        seeded = json.loads(_quietly([sys.executable, __file__, "seed"], env).splitlines()[-1])
        workers = 2 * _cores() + 1
        server, command = _server.gunicorn_start(port, workers, env, LOG)
        base = f"http://127.0.0.1:{port}"
        cookie = {"Cookie": f"sessionid={seeded['session']}"}
        pages = {name: _measure_page(server, base, cookie, *spec) for name, spec in PAGES.items()}
        weight = _page_weight(base, cookie, PAGES["app_overview"][0])
    finally:
        if server is not None:
            _server.stop_group(server.pid, grace_s=30)
        _database_drop()
    return {
        "apps": APPS,
        "big_app": {"containers": BIG_CONTAINERS, "deployments": BIG_DEPLOYMENTS, "steps": STEPS_PER_DEPLOYMENT},
        "gunicorn": _server.command_line(command, port),
        "gunicorn_workers": workers,
        "postgresql": postgresql,
        "queries_per_page": seeded["queries"],
        "pages": pages,
        "app_overview_weight": weight,
        "targets": TARGETS,
    }


# --- measuring -----------------------------------------------------------------------------------


def _measure_page(server, base: str, cookie: dict, path: str, headers: dict, expect: str) -> dict:
    import httpx

    headers = {**cookie, **headers}
    with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT) as client:
        for _ in range(WARMUP):
            _get(client, path, expect)
        cpu_before = _server_cpu(server.pid)
        one = [_get(client, path, expect) for _ in range(SEQUENTIAL)]
        cpu = _cpu_per_request(cpu_before, _server_cpu(server.pid), SEQUENTIAL)

    def client_run(_: int) -> list[float]:
        with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            return [_get(client, path, expect) for _ in range(PER_CLIENT)]

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        many = [latency for series in pool.map(client_run, range(CLIENTS)) for latency in series]
    elapsed = time.perf_counter() - began
    return {
        "path": path,
        "cpu_ms_per_request": cpu,
        "one_client_ms": _latencies(one),
        f"{CLIENTS}_clients_ms": _latencies(many),
        f"{CLIENTS}_clients_requests_per_s": round(len(many) / elapsed, 1),
    }


def _get(client, path: str, expect: str) -> float:
    began = time.perf_counter()
    response = client.get(path)
    latency = time.perf_counter() - began
    if response.status_code != 200 or expect not in response.text:
        raise RuntimeError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
    return latency


def _latencies(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(p: float) -> float:
        return round(1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)

    return {
        "p50": at(50),
        "p99": at(99),
        "max": round(1000 * ordered[-1], 1),
        "mean": round(1000 * statistics.fmean(ordered), 1),
    }


def _page_weight(base: str, cookie: dict, path: str) -> dict:
    """Bytes on the wire for the page and everything it loads, gzip-compressed."""
    import httpx

    with httpx.Client(base_url=base, headers={**cookie, "Accept-Encoding": "gzip"}, timeout=REQUEST_TIMEOUT) as client:
        html = client.get(path).text
        assets = re.findall(r'<(?:link[^>]+href|script[^>]+src)="(/static/[^"]+\.(?:css|js))"', html)
        sizes = {}
        for asset in assets:
            response = client.get(asset)
            # httpx decodes the body; the header says what was transferred.
            encoded = response.headers.get("content-encoding") == "gzip"
            sizes[asset] = int(response.headers["content-length"]) if encoded else len(gzip.compress(response.content))
    html_gzip = len(gzip.compress(html.encode(), compresslevel=6))
    total = html_gzip + sum(sizes.values())
    return {
        "html_bytes": len(html.encode()),
        "html_gzip_bytes": html_gzip,
        "assets_gzip_bytes": sizes,
        "total_kb": round(total / 1024, 1),
    }


# --- CPU accounting (as api_list_apps) -----------------------------------------------------------


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _process_ticks() -> dict[int, tuple[int, int]]:
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks[int(stat.parent.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]))
    return ticks


def _server_cpu(group: int) -> dict[str, dict[int, int]]:
    import psycopg

    with psycopg.connect(f"{_server.POSTGRES}/postgres", autocommit=True) as connection:
        rows = connection.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [DATABASE])
        backends = {pid for (pid,) in rows}
    ticks = _process_ticks()
    return {
        "gunicorn": {pid: cpu for pid, (pgrp, cpu) in ticks.items() if pgrp == group},
        "postgres": {pid: cpu for pid, (_, cpu) in ticks.items() if pid in backends},
    }


def _cpu_per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
    per_request = 1000 / os.sysconf("SC_CLK_TCK") / requests
    spent = {name: sum(cpu - before[name].get(pid, 0) for pid, cpu in after[name].items()) for name in after}
    return {name: round(ticks * per_request, 2) for name, ticks in spent.items()}


# --- database and seed ---------------------------------------------------------------------------


def _maintenance(statement: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{_server.POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(DATABASE)))
        return connection.info.parameter_status("server_version")


def _database_recreate() -> str:
    _database_drop()
    return _maintenance("CREATE DATABASE {}")


def _database_drop() -> None:
    _maintenance("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def _quietly(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done.stdout


def seed() -> dict:
    """The organization, its apps, the big app's history; a session; the SQL queries of each page."""
    import django

    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    owner = _seed_rows()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    queries = {}
    for name, (path, headers, expect) in PAGES.items():
        extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}
        client.get(path, **extra)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **extra)
        assert response.status_code == 200 and expect in response.text, (path, response.status_code)
        queries[name] = len(captured.captured_queries)
    return {"session": client.cookies["sessionid"].value, "queries": queries}


def _seed_rows():
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from berth.applications.models import App, Formation, Release
    from berth.billing.models import UsageRecord
    from berth.billing.money import period_of
    from berth.deployments.models import Deployment, DeploymentStep
    from berth.fleet.models import Container, DockerHost, Size
    from berth.tenancy.models import User
    from berth.tenancy.services import organization_create

    now = timezone.now()
    owner = User.objects.create_user("bench@example.com", "bench-password")
    organization = organization_create(actor=owner, slug=ORG, name="Benchmark")
    size = Size.objects.create(name="bench-small", memory_mb=128, cpu_millis=250, is_default=True)
    hosts = [
        DockerHost.objects.create(
            name=f"bench-{n}",
            engine_url=f"tcp://10.98.0.{n + 1}:2376",
            address=f"10.98.0.{n + 1}",
            memory_mb=65536,
            cpu_millis=64000,
            status=DockerHost.Status.UP,
        )
        for n in range(HOSTS)
    ]
    web = {"web": {"command": ["./server"], "port": 8080, "health_check": {"type": "http", "path": "/health"}}}
    names = [f"app-{n:04d}" for n in range(APPS - 1)] + [BIG]
    apps = App.objects.bulk_create(App(organization=organization, name=name, created_by=owner) for name in names)
    releases = Release.objects.bulk_create(
        Release(
            app=app,
            version=1,
            image=f"registry.example.com/bench/{app.name}:1",
            process_types=web,
            config={"A": "1"},
            author=owner,
        )
        for app in apps
    )
    big = apps[-1]
    history = Release.objects.bulk_create(
        Release(
            app=big,
            version=v,
            image=f"registry.example.com/bench/big:{v}",
            process_types=web,
            config={"A": str(v)},
            author=owner,
        )
        for v in range(2, BIG_DEPLOYMENTS + 1)
    )
    for app, release in zip(apps, releases, strict=True):
        app.current_release = history[-1] if app is big else release
    App.objects.bulk_update(apps, ["current_release"])
    Formation.objects.bulk_create(
        Formation(app=app, process_type="web", quantity=BIG_CONTAINERS if app is big else 1, size=size) for app in apps
    )
    deployments = Deployment.objects.bulk_create(
        [
            Deployment(
                app=app,
                release=release,
                kind="release",
                state="succeeded",
                created_by=owner,
                created_at=now - timedelta(hours=2),
                started_at=now - timedelta(hours=2),
                finished_at=now - timedelta(hours=2),
            )
            for app, release in zip(apps[:-1], releases[:-1], strict=True)
        ]
        + [
            Deployment(
                app=big,
                release=release,
                kind="release",
                state="succeeded",
                created_by=owner,
                created_at=now - timedelta(minutes=BIG_DEPLOYMENTS - n),
                started_at=now - timedelta(minutes=BIG_DEPLOYMENTS - n),
                finished_at=now - timedelta(minutes=BIG_DEPLOYMENTS - n - 0.5),
            )
            for n, release in enumerate([releases[-1], *history])
        ]
    )
    DeploymentStep.objects.bulk_create(
        DeploymentStep(
            deployment=deployment, at=deployment.created_at + timedelta(seconds=s), message=f"Step {s} of the rollout"
        )
        for deployment in deployments[APPS - 1 :]
        for s in range(STEPS_PER_DEPLOYMENT)
    )
    started = now - timedelta(hours=1)
    containers = [
        Container(
            host=hosts[n % HOSTS],
            docker_id=f"{n:064x}",
            name=f"{app.name}-web-0",
            organization=organization,
            app=app,
            release=app.current_release,
            process_type="web",
            index=0,
            size=size,
            state="running",
            health="healthy",
            published_port=30000 + n,
            started_at=started,
            healthy_at=started,
            last_seen_at=now,
        )
        for n, app in enumerate(apps[:-1])
    ] + [
        Container(
            host=hosts[i % HOSTS],
            docker_id=f"{APPS + i:064x}",
            name=f"big-web-{i}",
            organization=organization,
            app=big,
            release=history[-1],
            process_type="web",
            index=i,
            size=size,
            state="running",
            health="healthy",
            published_port=40000 + i,
            started_at=started,
            healthy_at=started,
            last_seen_at=now,
        )
        for i in range(BIG_CONTAINERS)
    ]
    containers = Container.objects.bulk_create(containers)
    UsageRecord.objects.bulk_create(
        UsageRecord(
            container=c,
            organization=organization,
            app=c.app,
            app_name=c.app.name,
            process_type="web",
            size_name=size.name,
            price_per_hour=Decimal("0.013889"),
            currency="USD",
            started_at=started,
            ended_at=None,
            period=period_of(now),
        )
        for c in containers
    )
    return owner


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    print(json.dumps(seed()))
