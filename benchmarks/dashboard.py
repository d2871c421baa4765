"""The tenant dashboard's heaviest pages: the organization home with 1,000 apps, and an app's overview
with 100 containers and 200 deployments, with its live update.

Berth's issue asks for: server CPU per page (target ≤ 15 ms), p50/p99 with one client (target p99 ≤
100 ms) and with 20 concurrent clients (written down), live-update requests likewise, and the page
weight of the app overview (HTML + CSS + JS transferred, gzip; target ≤ 100 KB).

1. Drops and recreates the database berth_bench_dashboard, migrates it, and collects the static files
   with the production settings (hashed, pre-compressed names, served by WhiteNoise).
2. Seeds it in a child process that loads Django (`python benchmarks/dashboard.py seed`) with a history
   shaped like the one Berth's worker and meter write (see `_History`), then VACUUM ANALYZE; counts each
   page's SQL queries with Django's test client and checks that the template loader caches.
3. Starts gunicorn as the Procfile does, with the production settings; requests carry the session cookie
   of a `force_login` of the organization's owner (who sees every column, the month's cost included).
4. For each page: every gunicorn worker is warmed up on it (2 x workers clients at once, 5 requests
   each), then 200 requests in a row from one client (p50/p99, and the CPU time of gunicorn and of the
   PostgreSQL backends per request, sampled from /proc), then 20 clients of 20 requests each (the same
   figures). Every answer must be a 200 that shows what the page is for. The live update is asked as
   the overview's poll asks it (htmx's headers, and the folded steps its page holds), and once more
   without saying what the page holds (every step written out).
5. Page weight: the overview's HTML gzip-compressed (as a compressing proxy sends it; Berth does not
   compress HTML itself) plus every stylesheet and script the page loads, as WhiteNoise sends them with
   `Accept-Encoding: gzip`.
6. Stops gunicorn and drops the database, whatever happened.

Run through benchmarks/run.py; `python benchmarks/dashboard.py seed` is its child.
"""

import gzip
import json
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _billingbench as shared  # database, child processes, latency summaries, MachineWatch
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
HOSTS = 4
WARMUP_PER_CLIENT = 5
SEQUENTIAL = 200
CLIENTS = 20
PER_CLIENT = 20
REQUEST_TIMEOUT = 30.0
# How often the CPU time of gunicorn and of the PostgreSQL backends is read: a backend that ends (a
# connection older than CONN_MAX_AGE is closed after its request) counts up to its last reading.
CPU_SAMPLE_S = 0.25
TARGETS = {"cpu_ms": 15.0, "p99_ms_one_client": 100.0, "overview_weight_kb": 100.0}

# name -> (path, extra headers, what the answer must contain)
LIVE = f"/orgs/{ORG}/apps/{BIG}/live/"
# What htmx sends with the overview's poll; the steps its page holds (HELD) are added from the page itself.
POLL = {
    "HX-Request": "true",
    "HX-Trigger": "app-state",
    "HX-Target": "app-state",
    "HX-Current-URL": f"http://127.0.0.1/orgs/{ORG}/apps/{BIG}/",
}
HELD = "X-Berth-Held-Steps"
LIVE_SHOWS = ['id="containers" aria-labelledby="containers-heading" hx-swap-oob="true"', "Older deployments"]
PAGES = {
    "org_home": (f"/orgs/{ORG}/", {}, ["1000 apps", 'href="/orgs/bench/apps/app-0049/"', "Page 1 of 20"]),
    "org_home_page_20": (f"/orgs/{ORG}/?page=20", {}, ['href="/orgs/bench/apps/big/"', "Page 20 of 20"]),
    "org_home_search": (f"/orgs/{ORG}/?q=app-00", {}, ["100 apps matching", "Page 1 of 2"]),
    "app_overview": (f"/orgs/{ORG}/apps/{BIG}/", {}, ['Containers <span class="muted">(100)', "Older deployments"]),
    # The poll as a browser sends it: with the ids of the folded steps its page holds, which the answer
    # leaves out (htmx keeps the page's own).
    "app_live": (LIVE, {**POLL}, [*LIVE_SHOWS, "hx-preserve></details>"]),
    # The same poll without them: every step written out again (what every poll cost before Berth left the
    # held ones out; and what a client that does not say what it holds gets).
    "app_live_all_steps": (LIVE, POLL, [*LIVE_SHOWS, " steps</summary>"]),
}


def run() -> dict:
    port = _server.free_port()
    env = _server.production_env(DATABASE, BERTH_THROTTLE_USER="1000000/min")
    server = None
    try:
        postgresql = shared.database_recreate(DATABASE)
        shared.progress(f"{NAME}: migrating {DATABASE}")
        shared.migrate(env)
        shared.quietly([sys.executable, "manage.py", "collectstatic", "--noinput", "--clear"], env)
        shared.progress(f"{NAME}: seeding")
        seeded = shared.child(__file__, ["seed"], env)
        _poll_holds(seeded["held_steps"])
        workers = 2 * _cores() + 1
        server, command = _server.gunicorn_start(port, workers, env, LOG)
        base = f"http://127.0.0.1:{port}"
        cookie = {"Cookie": f"sessionid={seeded.pop('session')}"}
        pages = {}
        with shared.MachineWatch() as watch:
            for name, spec in PAGES.items():
                shared.progress(f"{NAME}: measuring {name}")
                pages[name] = _measure_page(server.pid, workers, base, cookie, *spec)
        weight = _page_weight(base, cookie, PAGES["app_overview"][0])
    finally:
        if server is not None:
            _server.stop_group(server.pid, grace_s=30)
        shared.database_drop(DATABASE)
    return {
        "apps": APPS,
        "big_app": {"containers": BIG_CONTAINERS, "deployments": BIG_DEPLOYMENTS},
        "gunicorn": _server.command_line(command, port),
        "gunicorn_workers": workers,
        "postgresql": postgresql,
        **seeded,
        "pages": pages,
        "app_overview_weight": weight,
        "machine_while_measuring": watch.report(),
        "targets": TARGETS,
    }


# --- measuring -----------------------------------------------------------------------------------


def _measure_page(group: int, workers: int, base: str, cookie: dict, path: str, headers: dict, expect: list) -> dict:
    import httpx

    headers = {**cookie, **headers}

    def client_run(requests: int) -> list[float]:
        with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            return [_get(client, path, expect) for _ in range(requests)]

    def clients_run(clients: int, requests: int) -> list[float]:
        with ThreadPoolExecutor(clients) as pool:
            return [latency for series in pool.map(client_run, [requests] * clients) for latency in series]

    # A worker's first answer of a page compiles its templates and fills what Django loads lazily, once
    # in its life: every worker answers it a few times before anything counts.
    clients_run(2 * workers, WARMUP_PER_CLIENT)
    with _CpuWatch(group, DATABASE) as cpu:
        one = client_run(SEQUENTIAL)
    one_cpu = cpu.per_request(SEQUENTIAL)
    with _CpuWatch(group, DATABASE) as cpu:
        began = time.perf_counter()
        many = clients_run(CLIENTS, PER_CLIENT)
        elapsed = time.perf_counter() - began
    return {
        "path": path,
        "cpu_ms_per_request": one_cpu,
        "one_client_ms": shared.latency_summary(one),
        f"{CLIENTS}_clients_cpu_ms_per_request": cpu.per_request(len(many)),
        f"{CLIENTS}_clients_ms": shared.latency_summary(many),
        f"{CLIENTS}_clients_requests_per_s": round(len(many) / elapsed, 1),
    }


def _get(client, path: str, expect: list[str]) -> float:
    began = time.perf_counter()
    response = client.get(path)
    latency = time.perf_counter() - began
    missing = [text for text in expect if text not in response.text]
    if response.status_code != 200 or missing:
        raise RuntimeError(f"GET {path}: HTTP {response.status_code}, missing {missing}: {response.text[:300]}")
    return latency


def _page_weight(base: str, cookie: dict, path: str) -> dict:
    """Bytes on the wire for the page and every stylesheet and script it loads, gzip-compressed."""
    import httpx

    with httpx.Client(base_url=base, headers={**cookie, "Accept-Encoding": "gzip"}, timeout=REQUEST_TIMEOUT) as client:
        html = client.get(path).text
        assets = re.findall(r'<(?:link[^>]+href|script[^>]+src)="(/static/[^"]+\.(?:css|js))"', html)
        sizes = {}
        for asset in assets:
            response = client.get(asset)
            if response.status_code != 200:
                raise RuntimeError(f"GET {asset}: HTTP {response.status_code}")
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


def _cores() -> int:
    return len(os.sched_getaffinity(0))


class _CpuWatch:
    """CPU time spent meanwhile by gunicorn (its process group) and by the PostgreSQL backends of the
    benchmark's database, read from /proc every CPU_SAMPLE_S and at both ends. Processes are told apart by
    pid and start time; one that started meanwhile counts from zero (a new connection's backend), one that
    ended meanwhile up to its last reading."""

    def __init__(self, group: int, database: str):
        self.group, self.database = group, database
        self._first: dict[tuple[int, int], tuple[str, int]] = {}
        self._last: dict[tuple[int, int], tuple[str, int]] = {}
        self._kinds: dict[tuple[int, int], str | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._first = self._read()
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(CPU_SAMPLE_S):
            self._sample()

    def _sample(self) -> None:
        for key, (kind, ticks) in self._read().items():
            self._first.setdefault(key, (kind, 0))
            self._last[key] = (kind, ticks)

    def _kind(self, key: tuple[int, int], comm: str, group: int) -> str | None:
        if group == self.group:
            return "gunicorn"
        if comm != "postgres":
            return None
        if key not in self._kinds:  # "postgres: 15/main: postgres <database> 127.0.0.1(port) idle"
            try:
                words = (Path("/proc") / str(key[0]) / "cmdline").read_bytes().replace(b"\0", b" ").split()
            except OSError:
                return None
            self._kinds[key] = "postgres" if len(words) > 3 and words[3].decode() == self.database else None
        return self._kinds[key]

    def _read(self) -> dict[tuple[int, int], tuple[str, int]]:
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # ended meanwhile
                continue
            fields = text[text.rindex(")") + 2 :].split()
            key = (int(stat.parent.name), int(fields[19]))
            kind = self._kind(key, text[text.index("(") + 1 : text.rindex(")")], int(fields[2]))
            if kind is not None:
                found[key] = (kind, int(fields[11]) + int(fields[12]))
        return found

    def per_request(self, requests: int) -> dict[str, float]:
        spent = {"gunicorn": 0, "postgres": 0}
        for key, (kind, ticks) in self._last.items():
            spent[kind] += ticks - self._first[key][1]
        ms_per_tick = 1000 / os.sysconf("SC_CLK_TCK")
        return {kind: round(ticks * ms_per_tick / requests, 2) for kind, ticks in spent.items()}


# --- the seed (in the child) ---------------------------------------------------------------------


def seed() -> dict:
    """The organization and its history; a session of its owner; each page's SQL queries."""
    shared.django_setup()
    from django.db import connection
    from django.template import engines
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    began = time.monotonic()
    history = _History()
    owner = history.write()
    seconds = round(time.monotonic() - began, 1)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname IN "
            "('applications_app', 'applications_release', 'deployments_deployment', 'deployments_deploymentstep', "
            "'fleet_container', 'billing_usagerecord', 'billing_usagedaily') ORDER BY relname"
        )
        rows = dict(cursor.fetchall())
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    overview = client.get(PAGES["app_overview"][0]).content.decode()
    held = re.search(rf'hx-headers=\'{{"{HELD}": "([0-9,]*)"}}\'', overview)
    _poll_holds(held.group(1) if held else None)
    queries = {}
    for name, (path, headers, expect) in PAGES.items():
        extra = _meta(headers)
        client.get(path, **extra)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, **extra)
        text = response.content.decode()
        assert response.status_code == 200 and all(e in text for e in expect), (path, response.status_code)
        queries[name] = len(captured.captured_queries)
    loaders = [type(loader).__module__ for loader in engines["django"].engine.template_loaders]
    return {
        "session": client.cookies["sessionid"].value,
        "held_steps": PAGES["app_live"][1].get(HELD),
        "seed_seconds": seconds,
        "rows": rows,
        "overview_shows": {
            "containers": overview.count('<tr id="container-'),
            "deployments": overview.count('id="deployment-'),
            "steps": len(re.findall(r"<li><time ", overview)),
            "restarts_shown": overview.count("(last: "),
            "html_bytes": len(overview.encode()),
        },
        "live_answer_bytes": {
            name: len(client.get(PAGES[name][0], **_meta(PAGES[name][1])).content)
            for name in ("app_live", "app_live_all_steps")
        },
        "org_home_statuses": _statuses(client),
        "template_loaders": loaders,
        "queries_per_page": queries,
    }


def _poll_holds(held: str | None) -> None:
    """The overview's poll says which folded steps its page holds (the ids the page's state section sends);
    the answer must then leave them out. None: a Berth that does not say (before it did), whose poll is
    app_live_all_steps'."""
    if held is None:
        PAGES["app_live"] = (LIVE, POLL, LIVE_SHOWS)
    else:
        PAGES["app_live"][1][HELD] = held


def _meta(headers: dict[str, str]) -> dict[str, str]:
    """Request headers as the test client takes them (WSGI environ keys)."""
    return {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}


def _statuses(client) -> dict[str, int]:
    """How many apps of the whole organization show each status (every page of the org home)."""
    counts: dict[str, int] = {}
    for page in range(1, APPS // 50 + 1):
        html = client.get(f"/orgs/{ORG}/?page={page}").content.decode()
        for status in re.findall(r'<td><span class="badge ([a-z-]+)">', html):
            counts[status] = counts.get(status, 0) + 1
    return counts


class _History:
    """An organization as Berth's worker and meter leave it after weeks of use, written in bulk.

    - 999 apps `app-0000`… with three releases each (a third of them with a worker process type beside
      web), each deployed by a deployment with the steps the worker writes for it, the containers each
      release ran (those of older releases removed when the next one went live), and, one app in 40 each:
      a deployment queued (deploying), a release that failed its health check (failed), a formation scaled
      to 0 (scaled to zero), a web container that exited and waits for its back-off (crashed), and no
      release at all (new).
    - The app `big`: 100 web containers over 4 hosts and 200 deployments over 20 days, in a cycle of ten: five
      releases replacing the 100 containers one at a time (the 5 steps a slot takes, ~500 steps), three
      self-healings of one crashed container, a formation change starting 4 and a release that failed its
      health check. So the overview's 10 newest deployments are one cycle, ~2,500 steps.
    - The month's usage ledger from those containers' lives, split as metering splits it
      (`metering.intervals`), then the daily roll-up (`rollup.usage_rollup`) as the meter task runs it.
    """

    SPACING_H = 2.4  # between two deployments of `big`: 200 of them over 20 days
    # The newest deployment heals a container of the release that runs, so a container row shows a restart.
    CYCLE = ("release", "heal", "release", "scale", "release", "failed", "release", "heal", "release", "heal")
    KINDS = {"first": "release", "release": "release", "failed": "release", "scale": "scale", "heal": "heal"}
    QUEUED = {"first": "new release", "release": "new release", "failed": "new release", "scale": "formation change"}

    def __init__(self):
        from django.utils import timezone

        self.now = timezone.now()
        self.random = random.Random(11)
        self.releases, self.deployments, self.steps, self.containers, self.formations = [], [], [], [], []

    def write(self):
        from datetime import timedelta
        from decimal import Decimal

        from berth.applications.models import App, Formation, Release
        from berth.billing.models import SizePrice
        from berth.deployments.models import Deployment, DeploymentStep
        from berth.fleet.models import Container, DockerHost, Size
        from berth.tenancy.models import User
        from berth.tenancy.services import organization_create

        owner = User.objects.create_user("bench@example.com", "bench-password")
        self.owner = owner
        self.organization = organization_create(actor=owner, slug=ORG, name="Benchmark")
        for n in range(2):  # the switcher lists a few organizations
            organization_create(actor=owner, slug=f"bench-other-{n}", name=f"Other {n}")
        self.size = Size.objects.create(name="bench-small", memory_mb=128, cpu_millis=250, is_default=True)
        SizePrice.objects.create(
            size=self.size, price_per_hour=Decimal("0.013889"), currency="USD", effective_from=self.now - timedelta(365)
        )
        self.hosts = [
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
        names = [f"app-{n:04d}" for n in range(APPS - 1)] + [BIG]
        apps = App.objects.bulk_create(
            App(organization=self.organization, name=name, description=f"Benchmark app {name}", created_by=owner)
            for name in names
        )
        for n, app in enumerate(apps[:-1]):
            self._small_app(n, app)
        self._big_app(apps[-1])
        # In the order of their foreign keys: each row takes the ids of the rows it points at once they are written.
        Release.objects.bulk_create(self.releases, batch_size=2000)
        Deployment.objects.bulk_create(self.deployments, batch_size=2000)
        Container.objects.bulk_create(self.containers, batch_size=5000)
        DeploymentStep.objects.bulk_create(self.steps, batch_size=10000)
        Formation.objects.bulk_create(self.formations)
        App.objects.bulk_update(apps, ["current_release"], batch_size=1000)
        self._usage()
        return owner

    # --- the apps

    def _release(self, app, version: int, at, *, processes: tuple[str, ...]):
        from berth.applications.models import Release

        web = {"command": ["./server"], "port": 8080, "health_check": {"type": "http", "path": "/health"}}
        worker = {"command": ["./worker"]}
        release = Release(
            app=app,
            version=version,
            image=f"registry.example.com/bench/{app.name}:{version}",
            image_digest=f"sha256:{self.random.getrandbits(256):064x}",
            process_types={name: web if name == "web" else worker for name in processes},
            config={"DATABASE_URL": f"postgres://db.internal/{app.name}", "SECRET_KEY": f"{version:032d}"},
            description=f"Commit {self.random.getrandbits(28):07x}",
            author=self.owner,
            created_at=at,
        )
        self.releases.append(release)
        return release

    def _deployment(self, app, release, kind: str, at, *, state: str = "succeeded", error: str = "", by=True):
        from datetime import timedelta

        from berth.deployments.models import Deployment

        deployment = Deployment(
            app=app,
            release=release,
            kind=kind,
            state=state,
            created_by=self.owner if by else None,
            created_at=at,
            started_at=at + timedelta(seconds=1) if state != "queued" else None,
            error=error,
        )
        self.deployments.append(deployment)
        return deployment

    def _step(self, deployment, at, message: str) -> None:
        from berth.deployments.models import DeploymentStep

        self.steps.append(DeploymentStep(deployment=deployment, at=at, message=message))

    def _container(self, app, release, deployment, process_type: str, index: int, started, *, n: int):
        from datetime import timedelta

        from berth.fleet.models import Container

        host = self.hosts[n % HOSTS]
        container = Container(
            host=host,
            docker_id=f"{self.random.getrandbits(256):064x}",
            name=f"{ORG}.{app.name}.{process_type}.{index}.v{release.version}.{self.random.getrandbits(24):06x}",
            organization=self.organization,
            app=app,
            release=release,
            deployment=deployment,
            process_type=process_type,
            index=index,
            size=self.size,
            state="running",
            health="healthy",
            published_port=32768 + n % 20000,
            image_digest=release.image_digest,
            created_at=started - timedelta(seconds=1),
            started_at=started,
            healthy_at=started + timedelta(seconds=1),
            last_seen_at=self.now,
        )
        self.containers.append(container)
        return container

    @staticmethod
    def _end(container, at, state: str = "removed", exit_code: int | None = None) -> None:
        container.state = state
        container.health = "unknown" if state == "removed" else "unhealthy"
        container.finished_at = container.last_seen_at = at
        container.exit_code = exit_code if exit_code is not None else (0 if state == "removed" else 1)
        if state == "removed":
            container.removed_at = at

    def _start_steps(self, deployment, container, at, *, ready: bool, host_line: str) -> None:
        from datetime import timedelta

        slot = f"{container.process_type}.{container.index}"
        version = container.release.version
        self._step(deployment, at, f"Starting {slot} of v{version} on {host_line}.")
        self._step(
            deployment, at + timedelta(seconds=0.8), f"Started {container.name} (port {container.published_port})."
        )
        self._step(deployment, at + timedelta(seconds=1.1), f"{container.name} is healthy (GET /health answered 200).")
        if ready:
            self._step(deployment, at + timedelta(seconds=6.1), f"{container.name} is ready: healthy for 5 s.")

    def _host_line(self, n: int, same: int) -> str:
        host = self.hosts[n % HOSTS]
        free = 60000 - n % 997
        return f"{host.name}: {same} of this release's replicas there, {free} of 65536 MB free (4 of 4 hosts fit)"

    def _small_app(self, n: int, app) -> None:
        from datetime import timedelta

        from berth.applications.models import Formation

        kind = n % 40
        if kind == 5:  # new: nothing deployed yet
            self.formations.append(Formation(app=app, process_type="web", quantity=1, size=self.size))
            return
        processes = ("web", "worker") if n % 3 == 0 else ("web",)
        live: dict[str, object] = {}
        release = None
        for version, days in ((1, 30), (2, 19), (3, 9)):
            at = self.now - timedelta(days=days, minutes=n % 600)
            release = self._release(app, version, at, processes=processes)
            deployment = self._deployment(app, release, "release", at)
            self._step(deployment, at, f"Queued: new release to v{version}.")
            for i, process_type in enumerate(processes):
                started = at + timedelta(seconds=2 + 8 * i)
                new = self._container(app, release, deployment, process_type, 0, started, n=n + i)
                self._start_steps(deployment, new, started, ready=True, host_line=self._host_line(n + i, 0))
                if process_type in live:
                    self._end(live[process_type], started + timedelta(seconds=7))
                    self._step(
                        deployment,
                        started + timedelta(seconds=7),
                        f"Stopping {live[process_type].name}: replaced by {new.name}.",
                    )
                live[process_type] = new
            done = at + timedelta(seconds=2 + 8 * len(processes))
            self._step(deployment, done, f"Done: {app.name} runs v{version}.")
            deployment.finished_at = done
        app.current_release = release
        quantity = 1
        if kind == 1:  # deploying: v4 queued
            at = self.now - timedelta(seconds=20)
            pending = self._release(app, 4, at, processes=processes)
            deployment = self._deployment(app, pending, "release", at, state="queued")
            self._step(deployment, at, "Queued: new release to v4.")
        elif kind == 2:  # failed: v4 did not become healthy; v3 runs
            at = self.now - timedelta(hours=3)
            failed = self._release(app, 4, at, processes=processes)
            reason = (
                "web.0 of v4 did not become healthy: web.0 failed its health check 3 times: GET /health answered 500"
            )
            deployment = self._deployment(app, failed, "release", at, state="failed", error=reason)
            self._step(deployment, at, "Queued: new release to v4.")
            new = self._container(app, failed, deployment, "web", 0, at + timedelta(seconds=2), n=n)
            self._end(new, at + timedelta(seconds=40), exit_code=0)
            self._step(deployment, at + timedelta(seconds=2), f"Starting web.0 of v4 on {self._host_line(n, 0)}.")
            self._step(deployment, at + timedelta(seconds=3), f"Started {new.name} (port {new.published_port}).")
            self._step(deployment, at + timedelta(seconds=40), f"Stopping {new.name}: it did not become healthy.")
            self._step(deployment, at + timedelta(seconds=41), f"Failed: {reason}")
            self._step(deployment, at + timedelta(seconds=42), "Deployment failed; the previous release keeps running.")
            deployment.finished_at = at + timedelta(seconds=42)
        elif kind == 3:  # scaled to zero two days ago
            at = self.now - timedelta(days=2)
            deployment = self._deployment(app, release, "scale", at)
            self._step(deployment, at, f"Queued: formation change to v{release.version}.")
            for process_type, container in live.items():
                self._end(container, at + timedelta(seconds=2))
                self._step(
                    deployment, at + timedelta(seconds=2), f"Stopping {container.name}: {process_type} is scaled to 0."
                )
            self._step(deployment, at + timedelta(seconds=3), f"Done: {app.name} runs v{release.version}.")
            deployment.finished_at = at + timedelta(seconds=3)
            quantity = 0
        elif kind == 4:  # crashed: the web container exited; its slot waits out the crash back-off
            self._end(live["web"], self.now - timedelta(minutes=3), state="exited", exit_code=137)
        for process_type in processes:
            self.formations.append(Formation(app=app, process_type=process_type, quantity=quantity, size=self.size))

    def _big_app(self, app) -> None:
        from datetime import timedelta

        from berth.applications.models import Formation

        self.formations.append(Formation(app=app, process_type="web", quantity=BIG_CONTAINERS, size=self.size))
        version, release = 1, None
        slots: list = [None] * BIG_CONTAINERS
        n = 0  # containers made, for hosts and ports
        for k in range(BIG_DEPLOYMENTS):
            at = self.now - timedelta(hours=self.SPACING_H * (BIG_DEPLOYMENTS - 1 - k), minutes=40)
            kind = "first" if k == 0 else self.CYCLE[k % len(self.CYCLE)]
            if kind in ("first", "release", "failed"):
                previous, release = release, self._release(app, version, at, processes=("web",))
                version += 1
            state = "failed" if kind == "failed" else "succeeded"
            deployment = self._deployment(app, release, self.KINDS[kind], at, state=state, by=kind != "heal")
            if kind in self.QUEUED:  # a heal is Berth's own, started by the reconciler
                self._step(deployment, at, f"Queued: {self.QUEUED[kind]} to v{release.version}.")
            t = at + timedelta(seconds=2)
            if kind == "first":  # all 100 started together, then ready together
                for i in range(BIG_CONTAINERS):
                    slots[i] = self._container(app, release, deployment, "web", i, t, n=n)
                    self._start_steps(deployment, slots[i], t, ready=False, host_line=self._host_line(n, i // HOSTS))
                    n += 1
                for i in range(BIG_CONTAINERS):
                    self._step(deployment, t + timedelta(seconds=6), f"{slots[i].name} is ready: healthy for 5 s.")
                t += timedelta(seconds=7)
            elif kind == "release":  # one slot at a time: start, healthy, ready, stop the old one
                for i in range(BIG_CONTAINERS):
                    new = self._container(app, release, deployment, "web", i, t, n=n)
                    self._start_steps(deployment, new, t, ready=True, host_line=self._host_line(n, i // HOSTS))
                    self._end(slots[i], t + timedelta(seconds=6.5))
                    self._step(
                        deployment, t + timedelta(seconds=6.5), f"Stopping {slots[i].name}: replaced by {new.name}."
                    )
                    slots[i], n, t = new, n + 1, t + timedelta(seconds=7)
            elif kind == "heal":  # one container crashed (killed, out of memory); healing replaces it at once
                i = self.random.randrange(BIG_CONTAINERS)
                self._end(slots[i], at - timedelta(seconds=3), state="exited", exit_code=137)
                slots[i] = self._container(app, release, deployment, "web", i, t, n=n)
                self._start_steps(deployment, slots[i], t, ready=False, host_line=self._host_line(n, 25))
                n, t = n + 1, t + timedelta(seconds=2)
            elif kind == "scale":  # four slots had been stopped by hand; the formation change starts them again
                for i in range(BIG_CONTAINERS - 4, BIG_CONTAINERS):
                    self._end(slots[i], at - timedelta(minutes=30))
                    slots[i] = self._container(app, release, deployment, "web", i, t, n=n)
                    self._start_steps(deployment, slots[i], t, ready=True, host_line=self._host_line(n, 24))
                    n += 1
                t += timedelta(seconds=7)
            else:  # failed: the first new container never answered its health check
                new = self._container(app, release, deployment, "web", 0, t, n=n)
                reason = (
                    f"web.0 of v{release.version} did not become healthy: {new.name} failed its health check "
                    "3 times: GET /health answered 503"
                )
                self._end(new, t + timedelta(seconds=40))
                self._step(deployment, t, f"Starting web.0 of v{release.version} on {self._host_line(n, 0)}.")
                self._step(deployment, t + timedelta(seconds=1), f"Started {new.name} (port {new.published_port}).")
                self._step(deployment, t + timedelta(seconds=40), f"Stopping {new.name}: it did not become healthy.")
                self._step(deployment, t + timedelta(seconds=41), f"Failed: {reason}")
                deployment.error = reason
                release, n, t = previous, n + 1, t + timedelta(seconds=42)
                self._step(deployment, t, "Deployment failed; the previous release keeps running.")
                deployment.finished_at = t
                continue
            self._step(deployment, t, f"Done: {BIG} runs v{release.version}.")
            deployment.finished_at = t
        app.current_release = release

    # --- usage

    def _usage(self) -> None:
        """The ledger as metering writes it from the containers' lives, then the meter task's roll-up."""
        from berth.billing.metering import _split_open, intervals, prices_of
        from berth.billing.models import UsageRecord
        from berth.billing.money import period_of
        from berth.billing.rollup import usage_rollup

        prices = prices_of(self.size.pk)
        records = []
        for container in self.containers:
            if container.state == "running":
                spans = _split_open(container.started_at, self.now, prices)
            else:
                spans = intervals(container.started_at, container.finished_at, prices)
            records += [
                UsageRecord(
                    container=container,
                    organization=self.organization,
                    app=container.app,
                    app_name=container.app.name,
                    process_type=container.process_type,
                    size_name=self.size.name,
                    price_per_hour=span.price_per_hour,
                    currency=span.currency,
                    started_at=span.start,
                    ended_at=span.end,
                    period=period_of(span.start),
                )
                for span in spans
            ]
        UsageRecord.objects.bulk_create(records, batch_size=5000)
        usage_rollup()


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    print(json.dumps(seed()))
