"""Router join: a replica's health check passed → the router sends it traffic, seen by a client of the app.

Berth's issue: "time from 'replica healthy' to 'router sends it traffic' (target p99 ≤ 200 ms)."

An app of one web replica of berth-test/web:v1 over the test-bed hosts, behind a router (HAProxy + Caddy,
`_router.BenchRouter`) registered in Berth. JOINS times: the app is scaled from 1 to 2 replicas through
Berth's own code (`formation_scale`, the service `PATCH …/formation/` calls, then
`worker.deploy.run_app_deployments`, what the deploy task runs, in this process), so the new replica joins
the routes the way every replica does: its health check passes, `transitions.container_healthy` stamps
`healthy_at`, and `worker.routing.join` pushes the app's routes to the router. Then it is scaled back to 1
(the replica leaves the routes, drained, and stops) and, after a random 0.2 to 1 s, the next join.

All along, a client in another process (`python benchmarks/router_join.py poll …`, 2 threads) asks the
app's hostname through the router, `GET /cgi-bin/request` back to back, and notes when each replica first
answered (the first line of the answer, `SERVED_BY=<container hostname> web v1`, names it: Docker's
hostname is the container id's first 12 characters). The figure is end to end: from the new container's
`healthy_at` to the end of the first answer it gave through the router; beside it, to the moment that
request was sent (the router sent the replica its first request between the two). Where the time goes:
healthy_at → `routing.join` called (the deploy's step and usage written), the push itself (timed by a
wrapper around `worker.routing.join`, instrumentation only), and the push's end → the first answer. The
router's periodic pass (`worker.routing.sync_routers`, which beat runs every BERTH_ROUTE_SYNC_SECONDS) runs
in a thread, as it would beside the worker, so a join can find the router's lock taken.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
from _router import SIZE, WEB

NAME = "router_join"
ORG = "bench-join"
DATABASE = "berth_bench_join"
IMAGE = "berth-test/web:v1"
POLL_PATH = "/cgi-bin/request"
JOINS = 30
POLL_THREADS = 2
SEEN_TIMEOUT_S = 10.0
SEED = 20261206
TARGET_P99_S = 0.2


def run(*, joins: int = JOINS) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=420)
    return runner.run([str(joins)], exclusive_hosts=True)


# --- the client, in a process of its own -----------------------------------------------------------


def poll(port: int, hostname: str, threads: int) -> None:
    """Ask the app's hostname through the router, back to back; print a JSON line the first time each replica
    answers, and the totals when told to stop (SIGTERM)."""
    import http.client

    stop = threading.Event()
    lock = threading.Lock()
    seen: set[str] = set()
    totals = {"requests": 0, "failures": 0, "first_failures": []}
    began = time.monotonic()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            sent = time.time()
            try:
                connection.request("GET", POLL_PATH, headers={"Host": hostname})
                response = connection.getresponse()
                body = response.read().decode(errors="replace")
            except (OSError, http.client.HTTPException) as error:
                received, failure = time.time(), f"{type(error).__name__}: {error}"
                connection.close()
            else:
                received = time.time()
                failure = "" if response.status == 200 else f"HTTP {response.status}"
            first = body.split("\n", 1)[0] if not failure else ""
            replica = first.removeprefix("SERVED_BY=").split(" ", 1)[0] if first.startswith("SERVED_BY=") else ""
            with lock:
                totals["requests"] += 1
                if failure:
                    totals["failures"] += 1
                    if len(totals["first_failures"]) < 10:
                        totals["first_failures"].append(f"{received:.3f} {failure}"[:200])
                if replica and replica not in seen:
                    seen.add(replica)
                    print(json.dumps({"replica": replica, "sent": sent, "received": received}), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while not stop.is_set():
        stop.wait(0.2)
        if os.getppid() != parent:  # the measuring child is gone: so is the reason to ask
            stop.set()
    for worker in workers:
        worker.join(15)
    totals["seconds"] = round(time.monotonic() - began, 1)
    totals["per_second"] = round(totals["requests"] / totals["seconds"], 1)
    print(json.dumps({"totals": totals}), flush=True)


class Poller:
    """The client process, and what it reported."""

    def __init__(self, port: int, hostname: str):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "poll", str(port), hostname, str(POLL_THREADS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.first_seen: dict[str, tuple[float, float]] = {}
        self.totals: dict = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            record = json.loads(line)
            if "totals" in record:
                self.totals = record["totals"]
            else:
                self.first_seen[record["replica"]] = (record["sent"], record["received"])

    def wait_for(self, replica: str, timeout_s: float) -> tuple[float, float] | None:
        deadline = time.monotonic() + timeout_s
        while replica not in self.first_seen:
            if time.monotonic() > deadline or self.process.poll() is not None:
                return None
            time.sleep(0.01)
        return self.first_seen[replica]

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.reader.join(10)
        return self.totals


# --- the measuring child ------------------------------------------------------------------------


class JoinTimes:
    """Wraps worker.routing.join (which the deploy code calls as `routing.join`): when each call began and ended,
    and, inside it, the time spent waiting for the router's lock, reading the route table from PostgreSQL and
    talking to HAProxy's runtime API (one connection per exchange). Calls from other threads (the periodic
    pass) are not counted. Instrumentation only: the wrapped functions are Berth's own."""

    def __init__(self):
        from django.db import connection

        from worker import haproxy, locks, routing

        self.calls: dict[int, dict] = {}
        self.current: dict | None = None
        self.thread = threading.get_ident()
        original_join = routing.join

        def join(container, deployment=None):
            self.current = {
                "lock_wait": 0.0,
                "route_table": 0.0,
                "runtime_api": 0.0,
                "runtime_api_exchanges": 0,
                "queries": 0,
            }
            began = time.time()
            try:
                with connection.execute_wrapper(self._count_query):
                    return original_join(container, deployment)
            finally:
                record, self.current = self.current, None
                self.calls.setdefault(container.pk, {"began": began, "ended": time.time(), **record})

        routing.join = join
        routing.route_table = self._timed("route_table", routing.route_table)
        haproxy.RuntimeAPI._exchange = self._timed("runtime_api", haproxy.RuntimeAPI._exchange)
        original_lock = locks.advisory_lock

        @contextlib.contextmanager
        def advisory_lock(*args, **kwargs):
            began = time.monotonic()
            with original_lock(*args, **kwargs):
                self._add("lock_wait", time.monotonic() - began)
                yield

        locks.advisory_lock = advisory_lock

    def _count_query(self, execute, sql, params, many, context):
        if self.current is not None:
            self.current["queries"] += 1
        return execute(sql, params, many, context)

    def _add(self, key: str, seconds: float) -> None:
        if self.current is not None and threading.get_ident() == self.thread:
            self.current[key] += seconds
            if key == "runtime_api":
                self.current["runtime_api_exchanges"] += 1

    def _timed(self, key: str, function):
        def timed(*args, **kwargs):
            began = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                self._add(key, time.monotonic() - began)

        return timed


class PeriodicSync(threading.Thread):
    """The router's periodic pass, every BERTH_ROUTE_SYNC_SECONDS, as beat runs it beside the worker."""

    def __init__(self):
        super().__init__(daemon=True, name="sync-routers")
        self.stopping = threading.Event()
        self.passes = 0
        self.errors: list[str] = []

    def run(self) -> None:
        from django.conf import settings
        from django.db import connection

        from worker.routing import sync_routers

        try:
            while not self.stopping.wait(settings.BERTH_ROUTE_SYNC_SECONDS):
                try:
                    sync_routers()
                    self.passes += 1
                except Exception as error:  # reported; the next pass goes on
                    self.errors.append(f"{type(error).__name__}: {error}"[:300])
        finally:
            connection.close()


def measure(joins: int) -> dict:
    bench.django_setup()
    from _router import BenchRouter

    from berth.applications.services import app_create
    from berth.deployments.services import formation_scale, release_create
    from berth.fleet.models import Container
    from berth.routing.hostnames import default_hostname
    from worker.deploy import run_app_deployments

    hosts = bench.bench_hosts()
    bench.register_fleet(hosts, memory_mb=4096)
    bench.size_create(*SIZE)
    owner, organization = bench.bench_tenant(ORG)
    router = BenchRouter(NAME).start()
    sync = PeriodicSync()
    poller = None
    samples: list[dict] = []
    try:
        router.register()
        app = app_create(actor=owner, organization=organization, name="join")
        release_create(actor=owner, app=app, image=IMAGE, process_types=WEB)
        run_app_deployments(app.pk)
        [first] = Container.objects.filter(app=app, state__in=Container.LIVE)
        hostname = default_hostname(app.name, organization.slug)
        join_times = JoinTimes()
        sync.start()
        poller = Poller(router.files.http_port, hostname)
        if poller.wait_for(first.docker_id[:12], SEEN_TIMEOUT_S) is None:
            raise RuntimeError(f"the client never got an answer from {hostname} through the router")
        pause = random.Random(SEED)
        for number in range(joins):
            time.sleep(pause.uniform(0.2, 1.0))
            known = set(Container.objects.filter(app=app).values_list("pk", flat=True))
            formation_scale(actor=owner, app=app, changes={"web": {"quantity": 2}})
            run_app_deployments(app.pk)
            [new] = Container.objects.filter(app=app, state__in=Container.LIVE).exclude(pk__in=known)
            if new.healthy_at is None:
                raise RuntimeError(f"join {number}: {new.name} is not healthy ({new.state}, {new.health})")
            seen = poller.wait_for(new.docker_id[:12], SEEN_TIMEOUT_S)
            samples.append(sample(number, new, join_times.calls.get(new.pk), seen))
            formation_scale(actor=owner, app=app, changes={"web": {"quantity": 1}})
            run_app_deployments(app.pk)
    finally:
        sync.stopping.set()
        client = poller.stop() if poller else {}
        sync.join(30)
        router.stop()
    return {
        "joins": samples,
        "client": client,
        "sync_passes": sync.passes,
        "sync_errors": sync.errors[:5],
        **summarize(samples),
    }


def sample(number: int, container, join_call: dict | None, seen: tuple[float, float] | None) -> dict:
    healthy = container.healthy_at.timestamp()
    record = {
        "join": number,
        "container": container.name,
        "host": container.host.name,
        "healthy_at": healthy,
        "seen": seen is not None,
    }
    if join_call:
        record["healthy_to_join_call"] = round(join_call["began"] - healthy, 4)
        record["join_push"] = round(join_call["ended"] - join_call["began"], 4)
        for key in ("lock_wait", "route_table", "runtime_api"):
            record[f"push_{key}"] = round(join_call[key], 4)
        record["push_runtime_api_exchanges"] = join_call["runtime_api_exchanges"]
        record["push_queries"] = join_call["queries"]
    if seen:
        record["healthy_to_first_answer"] = round(seen[1] - healthy, 4)
        record["healthy_to_first_request_sent"] = round(seen[0] - healthy, 4)
        if join_call:
            record["push_end_to_first_answer"] = round(seen[1] - join_call["ended"], 4)
    return record


def summarize(samples: list[dict]) -> dict:
    def of(key: str) -> list[float]:
        return [s[key] for s in samples if key in s]

    answered = of("healthy_to_first_answer")
    unseen = sum(1 for s in samples if not s["seen"])
    return {
        "healthy_to_first_answer": bench.summary(answered, 4),
        "healthy_to_first_request_sent": bench.summary(of("healthy_to_first_request_sent"), 4),
        "healthy_to_join_call": bench.summary(of("healthy_to_join_call"), 4),
        "join_push": bench.summary(of("join_push"), 4),
        "push_lock_wait": bench.summary(of("push_lock_wait"), 4),
        "push_route_table": bench.summary(of("push_route_table"), 4),
        "push_runtime_api": bench.summary(of("push_runtime_api"), 4),
        "push_end_to_first_answer": bench.summary(of("push_end_to_first_answer"), 4),
        "never_seen": unseen,
        # A join never seen within SEEN_TIMEOUT_S counts as missing the target.
        "target_met": bool(answered) and not unseen and bench.percentile(answered, 99) <= TARGET_P99_S,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2])))
elif __name__ == "__main__" and sys.argv[1:2] == ["poll"]:
    poll(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
