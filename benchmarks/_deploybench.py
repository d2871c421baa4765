"""Shared plumbing of the deploy-engine benchmarks (deploy_overhead, scale_out, reconcile_pass, self_heal).

Not a benchmark itself (its name starts with "_"). Each benchmark's `run()` is the parent: it makes a
database of its own, migrates it, runs the measuring child (`python benchmarks/<name>.py measure`, in
its own process so Django is set up on that database and run.py's process never loads Django), and
cleans up whatever happened: the child's processes, the containers labelled with the benchmark's
organization, the database, and the Redis database the benchmarks use as their broker.

Where the benchmarks run:

- Docker hosts: the test bed's hosts `BERTH_BENCH_HOSTS` (indices, default "1,2": h1 and h2). Every
  container a benchmark starts carries its organization's slug (`berth.org=<slug>` for Berth's
  containers, `berth-bench=<slug>` for raw ones) and is removed by that label at the end.
- PostgreSQL: one database per benchmark (`berth_bench_<name>`), dropped at the end.
- Redis: database `BERTH_BENCH_REDIS_DB` (default 15) is the broker and result backend of the
  benchmarks' Berth; it is flushed before and after. Nothing else of Berth uses that database.
"""

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import _server  # benchmarks/ is sys.path[0] both under run.py and as a script

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SERVER = _server.POSTGRES
HOSTS_SCRIPT = REPO / "testbed" / "hosts.sh"
REDIS_DB = int(os.environ.get("BERTH_BENCH_REDIS_DB", "15"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
RESULT_PREFIX = "RESULT "


@dataclass(frozen=True)
class BenchHost:
    """One test-bed Docker host, as testbed/hosts.sh names it."""

    name: str
    engine_url: str
    address: str


def bench_hosts() -> list[BenchHost]:
    indices = [int(i) for i in os.environ.get("BERTH_BENCH_HOSTS", "1,2").split(",") if i.strip()]
    return [BenchHost(f"h{i}", f"unix:///run/berth-testbed/h{i}/docker.sock", f"10.250.{i}.2") for i in indices]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float], digits: int = 3) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


# --- the parent: test bed, database, broker, child, cleanup ------------------------------------


def _ready(host: BenchHost) -> bool:
    """The host's engine answers and has the benchmarks' image."""
    try:
        client = _client(host, timeout=10)
        try:
            return any("berth-test/web:v1" in (row.get("RepoTags") or []) for row in client.images())
        finally:
            client.close()
    except Exception:
        return False


def testbed_up(hosts: list[BenchHost]) -> None:
    """`testbed/hosts.sh up N`, unless every benchmark host already answers with the image loaded: `up N`
    brings up hosts 1..N, and would restart an engine of a lower host that another engineer's test has
    stopped on purpose (`stop-engine`)."""
    if all(_ready(host) for host in hosts):
        return
    highest = max(int(h.name[1:]) for h in hosts)
    done = subprocess.run(
        [str(HOSTS_SCRIPT), "up", str(highest)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode:
        raise RuntimeError(f"testbed/hosts.sh up {highest} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def _maintenance(statement: str, database: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(database)))
        return connection.info.parameter_status("server_version")


def database_recreate(database: str) -> str:
    database_drop(database)
    return _maintenance("CREATE DATABASE {}", database)


def database_drop(database: str) -> None:
    _maintenance("DROP DATABASE IF EXISTS {} WITH (FORCE)", database)


def broker_flush() -> None:
    """Empty the benchmarks' Redis database (broker queues, results): it belongs to the benchmarks only."""
    import redis

    if REDIS_DB == 0:
        raise RuntimeError("BERTH_BENCH_REDIS_DB must not be 0, the database Berth itself uses.")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


def child_env(database: str) -> dict[str, str]:
    """Production settings on the benchmark's database, with the benchmarks' Redis database as broker."""
    return _server.production_env(
        database,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_RESULT_BACKEND=REDIS_URL,
        BERTH_LOG_LEVEL=os.environ.get("BERTH_LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"migrate failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def pgid_file(name: str) -> Path:
    return OUT / f"{name}.pgids"


def run_child(name: str, script: Path, env: dict[str, str], timeout_s: float, args: list[str]) -> dict:
    """Run `script measure ARGS` in its own session; its last RESULT line is the figures."""
    OUT.mkdir(exist_ok=True)
    stdout_path, stderr_path = OUT / f"{name}.out", OUT / f"{name}.log"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(script), "measure", *args],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _server.stop_group(child.pid)
            raise RuntimeError(f"{name} ran longer than {timeout_s:.0f} s; see {stderr_path}") from None
        finally:
            if child.poll() is None:
                _server.stop_group(child.pid)
    lines = [line for line in stdout_path.read_text().splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode or not lines:
        tail = stderr_path.read_text()[-3000:]
        raise RuntimeError(f"{name} measuring child exited {child.returncode}; see {stderr_path}:\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


# What a benchmark's process groups run: a recorded group id whose leader runs none of these was recycled.
OURS = (b"celery", b"worker.events", b"worker.logs", b"gunicorn", b"haproxy", b"caddy", b"redis-server")


def stop_recorded_groups(name: str) -> None:
    """Stop the process groups (Celery worker, beat, event follower, log collector, gunicorn, a router, a Redis of
    its own) a child recorded and left behind."""
    path = pgid_file(name)
    if not path.exists():
        return
    for line in path.read_text().split():
        pgid = int(line)
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
            # Only our own processes: a recycled process-group id is left alone.
            if any(name in cmdline for name in OURS):
                _server.stop_group(pgid)
    path.unlink()


def _client(host: BenchHost, timeout: int = 60):
    import docker

    return docker.APIClient(base_url=host.engine_url, timeout=timeout, version="auto")


def ours(labels: dict | None, org_slug: str) -> bool:
    """A container or network of this benchmark: its organization's slug is `org_slug` or `org_slug-…`
    (Berth's own, label berth.org), or it is one of the benchmark's raw containers (label berth-bench)."""
    labels = labels or {}
    return any(
        value == org_slug or value.startswith(f"{org_slug}-")
        for value in (labels.get("berth.org", ""), labels.get("berth-bench", ""))
    )


def remove_ours(hosts: list[BenchHost], org_slug: str, threads: int = 16) -> int:
    """Force-remove every container of this benchmark on the hosts; returns how many."""
    from concurrent.futures import ThreadPoolExecutor

    removed = 0
    for host in hosts:
        client = _client(host)
        try:
            rows = client.containers(all=True, filters={"label": "berth.org"})
            rows += client.containers(all=True, filters={"label": "berth-bench"})
            ids = {row["Id"] for row in rows if ours(row.get("Labels"), org_slug)}

            def remove(docker_id: str, client=client) -> None:
                with contextlib.suppress(Exception):
                    client.remove_container(docker_id, force=True)

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(remove, ids))
            removed += len(ids)
        finally:
            client.close()
    return removed


def remove_networks(hosts: list[BenchHost], org_slug: str) -> None:
    """Berth's per-organization networks that this benchmark's organizations created (label berth.org), if empty."""
    for host in hosts:
        client = _client(host)
        try:
            for network in client.networks(filters={"label": "berth.org"}):
                if ours(network.get("Labels"), org_slug):
                    with contextlib.suppress(Exception):
                        client.remove_network(network["Id"])
        finally:
            client.close()


def foreign_berth_containers(hosts: list[BenchHost], org_slug: str) -> dict[str, int]:
    """Berth-managed containers on the hosts that are not this benchmark's: another Berth (a test run) is there."""
    found = {}
    for host in hosts:
        client = _client(host)
        try:
            rows = client.containers(all=True, filters={"label": "berth.managed"})
        finally:
            client.close()
        others = [r for r in rows if not ours(r.get("Labels"), org_slug)]
        if others:
            found[host.name] = len(others)
    return found


def wait_for_hosts_to_ourselves(hosts: list[BenchHost], org_slug: str, timeout_s: float = 180.0) -> dict:
    """observe_host removes (or adopts) every Berth container it has no row for. Another Berth's containers on
    the same hosts (a test run on the shared test bed) would be destroyed by it, and our containers by that
    test's fixtures; so wait until the hosts hold none but ours, and refuse to start otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = foreign_berth_containers(hosts, org_slug)
        if not found:
            return {}
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Other Berth containers are on the benchmark's hosts ({found}), probably a test run: this benchmark's "
                "reconciler would remove them. Wait for it to finish, or use other test-bed hosts, e.g. "
                "`testbed/hosts.sh up 4` and BERTH_BENCH_HOSTS=3,4."
            )
        time.sleep(2)


# --- what the machine was doing -----------------------------------------------------------------

_WATCHED = ("pytest", "celery", "gunicorn", "chromium", "chrome", "postgres", "dockerd", "containerd-shim", "uv")


def _processes() -> Counter:
    """How many processes of each watched kind run now (by command line)."""
    seen = Counter()
    me = os.getpid()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        if int(cmdline.parent.name) == me:
            continue
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name in _WATCHED:
            if name in text.split(" ", 1)[0].rsplit("/", 1)[-1] or (name in ("pytest", "celery") and name in text):
                seen[name] += 1
                break
    return seen


def machine_context(hosts: list[BenchHost]) -> dict:
    """Load, free memory, the other work on the machine and the engines' container counts, right now."""
    meminfo = Path("/proc/meminfo").read_text().split()
    context = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "mem_available_mib": int(meminfo[meminfo.index("MemAvailable:") + 1]) // 1024,
        "processes": dict(_processes()),
        "running_containers": {},
        "foreign_berth_containers": {},
    }
    import docker

    for name, url in [("machine", "unix:///var/run/docker.sock")] + [(h.name, h.engine_url) for h in hosts]:
        try:
            client = docker.APIClient(base_url=url, timeout=10, version="auto")
            try:
                context["running_containers"][name] = len(client.containers())
                if name != "machine":
                    rows = client.containers(all=True, filters={"label": "berth.managed"})
                    context["foreign_berth_containers"][name] = sum(
                        1 for r in rows if not (r.get("Labels") or {}).get("berth.org", "").startswith("bench-")
                    )
            finally:
                client.close()
        except Exception as error:
            context["running_containers"][name] = f"unreachable: {error.__class__.__name__}"
    return context


def software(hosts: list[BenchHost]) -> dict:
    from importlib.metadata import version

    import docker
    import psycopg
    import redis

    versions = {f"python_{p}": version(p) for p in ("django", "celery", "docker", "psycopg", "redis")}
    for host in hosts:
        client = docker.APIClient(base_url=host.engine_url, timeout=10, version="auto")
        try:
            versions[f"engine_{host.name}"] = client.version().get("Version", "")
        finally:
            client.close()
    cli = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
    versions["docker_cli"] = cli.stdout.strip()
    with psycopg.connect(f"{SERVER}/postgres") as connection:
        versions["postgresql"] = connection.info.parameter_status("server_version")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        versions["redis"] = client.info("server")["redis_version"]
    finally:
        client.close()
    return versions


class Benchmark:
    """The parent side of one benchmark: set up, run the child, clean up whatever happened."""

    def __init__(self, name: str, script: str, *, org_slug: str, database: str, timeout_s: float):
        self.name = name
        self.script = Path(script).resolve()
        self.org_slug = org_slug
        self.database = _server.database_name(database)
        self.timeout_s = timeout_s
        self.hosts = bench_hosts()

    def run(self, args: list[str], *, exclusive_hosts: bool) -> dict:
        env = child_env(self.database)
        env["BERTH_BENCH_ORG"] = self.org_slug
        try:
            testbed_up(self.hosts)
            self.cleanup_containers()
            waited = time.monotonic()
            if exclusive_hosts:
                wait_for_hosts_to_ourselves(self.hosts, self.org_slug)
            waited = round(time.monotonic() - waited, 1)
            database_recreate(self.database)
            broker_flush()
            migrate(env)
            before = machine_context(self.hosts)
            began = time.monotonic()
            figures = run_child(self.name, self.script, env, self.timeout_s, args)
            elapsed = round(time.monotonic() - began, 1)
            after = machine_context(self.hosts)
        finally:
            removed = self.clean_up()
        return {
            "hosts": [h.name for h in self.hosts],
            "software": software(self.hosts),
            "waited_for_hosts_s": waited,
            "measuring_s": elapsed,
            "context_before": before,
            "context_after": after,
            "left_over_containers_removed": removed,
            **figures,
        }

    def cleanup_containers(self) -> int:
        return remove_ours(self.hosts, self.org_slug)

    def clean_up(self) -> int | str:
        """Every step, whatever the others did: a host that vanished must not leave the database behind."""
        removed: int | str = 0
        steps = [
            ("processes", lambda: stop_recorded_groups(self.name)),
            ("beat schedule", lambda: [p.unlink() for p in OUT.glob(f"{self.name}-celerybeat-schedule*")]),
            ("containers", self.cleanup_containers),
            ("networks", lambda: remove_networks(self.hosts, self.org_slug)),
            ("database", lambda: database_drop(self.database)),
            ("broker", broker_flush),
        ]
        for what, step in steps:
            try:
                result = step()
            except Exception as error:  # reported, and the next step still runs
                print(f"{self.name}: cleaning up {what} failed: {error}", file=sys.stderr)
                result = f"failed: {error.__class__.__name__}" if what == "containers" else None
            if what == "containers":
                removed = result
        return removed


# --- the child: Django on the benchmark's database ----------------------------------------------


def django_setup() -> None:
    import django

    for path in (str(REPO), str(REPO / "platform")):
        if path not in sys.path:
            sys.path.insert(0, path)
    django.setup()


def emit(figures: dict) -> None:
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def record_pgid(name: str, pgid: int) -> None:
    with pgid_file(name).open("a") as out:
        out.write(f"{pgid}\n")


def register_fleet(hosts: list[BenchHost], memory_mb: int):
    """The hosts as an operator registers them, then heartbeated by the worker's own check_host."""
    from berth.fleet.models import DockerHost
    from worker.reconcile import check_host

    rows = []
    for host in hosts:
        row = DockerHost.objects.create(
            name=f"bench-{host.name}",
            engine_url=host.engine_url,
            address=host.address,
            memory_mb=memory_mb,
            cpu_millis=2000,
        )
        if not check_host(row):
            raise RuntimeError(f"{host.name} ({host.engine_url}) does not answer")
        row.refresh_from_db()
        rows.append(row)
    return rows


def bench_tenant(org_slug: str):
    """An owner and their organization."""
    from berth.tenancy.models import User
    from berth.tenancy.services import organization_create

    owner = User.objects.create_user(f"{org_slug}@example.com")
    organization = organization_create(actor=owner, slug=org_slug, name=f"Benchmark {org_slug}")
    return owner, organization


def size_create(name: str, memory_mb: int, cpu_millis: int):
    from berth.fleet.models import Size

    return Size.objects.create(name=name, memory_mb=memory_mb, cpu_millis=cpu_millis, is_default=True)


class Poller(threading.Thread):
    """wait_http in a thread."""

    def __init__(self, address: str, port: int, path: str, timeout_s: float = 30.0):
        super().__init__(daemon=True)
        self.args = (address, port, path, timeout_s)
        self.answered_at: float | None = None
        self.started_at = time.time()

    def run(self) -> None:
        self.answered_at = _server.wait_http(*self.args)


class BerthProcesses:
    """Berth's own processes as the Procfile runs them (web, Celery worker, beat, event follower), on the child's
    database and broker; each in its own process group, recorded for the parent to stop if the child cannot."""

    def __init__(self, name: str):
        self.name = name
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, role: str, args: list[str], **env: str) -> subprocess.Popen:
        process = _server.start_group(args, {**os.environ, **env}, OUT / f"{self.name}-{role}.log")
        record_pgid(self.name, process.pid)
        self.running[role] = process
        return process

    def start_worker(self, *, beat: bool) -> None:
        """`celery -A worker worker --concurrency 2` (and beat), then wait until the worker answers a task."""
        celery = str(Path(sys.executable).with_name("celery"))
        self.start("worker", [celery, "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "2"])
        if beat:
            schedule = OUT / f"{self.name}-celerybeat-schedule"
            self.start("beat", [celery, "-A", "worker", "beat", "--loglevel", "INFO", "--schedule", str(schedule)])
        from worker.celery import app

        app.send_task("berth.health").get(timeout=60)

    def start_web(self, workers: int) -> tuple[int, str]:
        """Gunicorn as the Procfile starts it (`_server.gunicorn_start`, the child's production settings), on a
        free port, waited for until /healthz answers; returns the port and the command line as reported."""
        port = _server.free_port()
        process, command = _server.gunicorn_start(port, workers, dict(os.environ), OUT / f"{self.name}-gunicorn.log")
        record_pgid(self.name, process.pid)
        self.running["web"] = process
        return port, _server.command_line(command, port)

    def stop(self, role: str) -> None:
        process = self.running.pop(role, None)
        if process is not None:
            _server.stop_group(process.pid)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for role in list(self.running):
            self.stop(role)

    def check(self) -> None:
        for role, process in self.running.items():
            if process.poll() is not None:
                log = f"benchmarks/out/{self.name}-{role}.log"
                raise RuntimeError(f"{role} exited with {process.returncode}; see {log}")
