"""One full reconcile pass (the periodic task berth.fleet.reconcile) over 100, 500 and 1,000 running containers.

Berth's issue: "one full reconcile pass (observe_host over all hosts + heal_app over all apps, i.e. what
the periodic task berth.fleet.reconcile does) over 100, 500 and 1,000 running containers; target ≤ 2 s
at 1,000." The pass measured is `worker.tasks.reconcile_fleet` itself, called in this process (a
Celery task object called directly runs its body), so it is exactly what the worker runs every 10 s.

The fleet: apps of 10 `worker` replicas each (berth-test/nobind:v1: a shell that sleeps; no port, no
health check), a 16 MB size, split evenly over the hosts (index 0, 2, … on the first), 10 apps per
organization (each organization has its own network on each host, and a /24 holds ~250 containers). Containers are
started straight through Berth's own engine driver (`Engine.run` of `container_spec`, so each carries
Berth's labels and hardening), without deployments; their apps have v1 as current release and a
formation of 10. The rows are not written by hand: the first pass after each growth step adopts the
new containers from their labels (`observe_host` → `_adopt_or_remove`), a real code path, timed on
its own, SETTLE_S after the last container started. Then PASSES steady passes are timed, with their
SQL query counts, and one more pass is timed piece by piece (each host's observe_host, heal_apps over
all apps, the stale-deployment sweep). Last, IDLE_APPS more apps scaled to 0 are added (no containers)
and the passes timed again: heal_apps visits every app with a current release, so this separates the
cost per app from the cost per container.

observe_host removes every Berth-labelled container it has no row for, so the benchmark refuses to
run while another Berth's containers (a test run) are on its hosts; see _deploybench.
"""

import itertools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script

NAME = "reconcile_pass"
ORG = "bench-reconcile"
DATABASE = "berth_bench_reconcile"
IMAGE = "berth-test/nobind:v1"
IMAGE_USER = "10001:10001"  # what the image's config says (testbed/images/nobind/Dockerfile)
SIZES = (100, 500, 1000)
PER_APP = 10
APPS_PER_ORG = 10  # 100 containers per organization, 50 per host
IDLE_APPS = 900  # after the largest size: apps scaled to 0, so the pass visits 1,000 apps
PASSES = 10
SETTLE_S = 20.0
SIZE = ("bench-16", 16, 100)  # busybox sh + sleep use well under 1 MB
START_THREADS_PER_HOST = 6
# Never let the machine run short: stop growing if the next size would leave less than this.
MIN_AVAILABLE_MIB = 4096
TARGET_S = 2.0


def run(*, sizes: tuple[int, ...] = SIZES, passes: int = PASSES) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=3600)
    return runner.run([",".join(map(str, sizes)), str(passes)], exclusive_hosts=True)


# --- the measuring child ------------------------------------------------------------------------


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class Measure:
    def __init__(self, sizes: list[int], passes: int):
        from berth.applications.specs import parse_process_types

        self.sizes, self.passes = sizes, passes
        self.hosts = bench.bench_hosts()
        self.host_rows = bench.register_fleet(self.hosts, memory_mb=65536)
        self.size = bench.size_create(*SIZE)
        self.owner, first = bench.bench_tenant(ORG)
        self.organizations = [first]
        self.process_types = {n: p.as_json() for n, p in parse_process_types({"worker": {}}).items()}
        self.apps: list = []
        self.results: list[dict] = []

    # --- the fleet ---

    def add_apps(self, count: int, quantity: int = PER_APP) -> list:
        """Apps with v1 current and a formation of `quantity` workers, as a deployment would have left them."""
        from berth.applications.models import App, Formation, Release

        first = len(self.apps)
        new = App.objects.bulk_create(
            App(organization=self.organization_of(first + n), name=f"r{first + n:04d}", created_by=self.owner)
            for n in range(count)
        )
        releases = Release.objects.bulk_create(
            Release(app=app, version=1, image=IMAGE, process_types=self.process_types, config={}, author=self.owner)
            for app in new
        )
        Formation.objects.bulk_create(
            Formation(app=app, process_type="worker", quantity=quantity, size=self.size) for app in new
        )
        for app, release in zip(new, releases, strict=True):
            app.current_release = release
        App.objects.bulk_update(new, ["current_release"])
        self.apps.extend(new)
        return list(zip(new, releases, strict=True))

    def organization_of(self, app_number: int):
        """APPS_PER_ORG apps per organization: Berth gives each organization one bridge network per host, and
        the test bed's address pools are /24s, so one organization holds at most ~250 containers per host."""
        from berth.tenancy.services import organization_create

        wanted = app_number // APPS_PER_ORG
        while len(self.organizations) <= wanted:
            slug = f"{ORG}-{len(self.organizations):02d}"
            self.organizations.append(organization_create(actor=self.owner, slug=slug, name=slug))
        return self.organizations[wanted]

    def start_containers(self, apps_and_releases: list) -> float:
        """Every replica of the new apps, through Berth's engine driver, several at a time per host."""
        from worker.containers import container_spec, network_name
        from worker.engine import Engine

        work = {row.pk: [] for row in self.host_rows}
        organizations = {}
        for app, release in apps_and_releases:
            organizations[app.organization.pk] = app.organization
            release.app = app
            process = release.processes["worker"]
            for index in range(PER_APP):
                host = self.host_rows[index % len(self.host_rows)]
                work[host.pk].append(
                    container_spec(
                        release=release,
                        process=process,
                        index=index,
                        size=self.size,
                        host=host,
                        deployment_id=None,
                        image_user=IMAGE_USER,
                    )
                )
        began = time.monotonic()

        def start_all(host) -> None:
            with Engine(host) as engine:
                for organization in organizations.values():
                    labels = {"berth.managed": "true", "berth.org": organization.slug}
                    engine.ensure_network(network_name(organization.pk), labels)
            engines = [Engine(host) for _ in range(START_THREADS_PER_HOST)]
            try:
                specs = work[host.pk]
                chunks = [specs[i :: len(engines)] for i in range(len(engines))]
                with ThreadPoolExecutor(len(engines)) as pool:
                    list(
                        pool.map(
                            lambda pair: [pair[0].run(spec) for spec in pair[1]], zip(engines, chunks, strict=True)
                        )
                    )
            finally:
                for engine in engines:
                    engine.close()

        with ThreadPoolExecutor(len(self.host_rows)) as pool:
            list(pool.map(start_all, self.host_rows))
        return time.monotonic() - began

    def running_on_hosts(self) -> int:
        from worker.engine import Engine

        total = 0
        for host in self.host_rows:
            with Engine(host) as engine:
                total += sum(1 for s in engine.list_managed() if s["state"] == "running")
        return total

    # --- the pass ---

    def guarded_pass(self) -> tuple[float, int]:
        """One reconcile_fleet, timed, with its SQL query count; never while another Berth's containers are there."""
        from django.db import connection

        from worker.tasks import reconcile_fleet

        bench.wait_for_hosts_to_ourselves(self.hosts, ORG, timeout_s=120)
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            began = time.perf_counter()
            reconcile_fleet()
            elapsed = time.perf_counter() - began
        return elapsed, counter.count

    def pieces(self) -> dict:
        """The same pass, piece by piece, as reconcile_fleet runs it."""
        from berth.applications.models import App
        from berth.fleet.models import DockerHost
        from worker import deploy, reconcile
        from worker.engine import Engine
        from worker.healing import heal_apps

        bench.wait_for_hosts_to_ourselves(self.hosts, ORG, timeout_s=120)
        pieces = {}
        for host in DockerHost.objects.filter(status=DockerHost.Status.UP):
            began = time.perf_counter()
            with Engine(host) as engine:
                listed = len(engine.list_managed())
            pieces[f"list_managed_{host.name}"] = time.perf_counter() - began
            began = time.perf_counter()
            reconcile.observe_host(host)
            pieces[f"observe_host_{host.name}"] = time.perf_counter() - began
            pieces[f"listed_{host.name}"] = listed
        began = time.perf_counter()
        heal_apps(list(App.objects.filter(current_release__isnull=False).values_list("pk", flat=True)))
        pieces["heal_apps"] = time.perf_counter() - began
        began = time.perf_counter()
        list(deploy.stale_deployments().values_list("pk", flat=True))
        pieces["stale_deployments"] = time.perf_counter() - began
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in pieces.items()}

    def metering_passes(self, count: int = 2) -> list[dict]:
        """Not the target: the other periodic fleet-wide task (berth.billing.meter, every 30 s), timed the same
        way, because it also walks every container. Skipped where the worker has no such task."""
        from django.db import connection

        from worker import tasks

        # Named meter_usage before the metering functions shared the usage_sync names.
        usage_sync_pass = getattr(tasks, "usage_sync_pass", None) or getattr(tasks, "meter_usage", None)
        if usage_sync_pass is None:
            return []
        passes = []
        for _ in range(count):
            counter = QueryCounter()
            with connection.execute_wrapper(counter):
                began = time.perf_counter()
                usage_sync_pass()
                passes.append({"s": round(time.perf_counter() - began, 3), "queries": counter.count})
        return passes

    def check_steady(self, expected: int) -> dict:
        from berth.deployments.models import Deployment
        from berth.fleet.models import Container

        live = Container.objects.filter(state__in=Container.LIVE).count()
        heals = Deployment.objects.count()
        running = self.running_on_hosts()
        if live != expected or running != expected or heals:
            raise RuntimeError(
                f"expected {expected} containers: {live} live rows, {running} running on the hosts, {heals} "
                "deployments (a heal means the fleet drifted: did something else remove containers?)"
            )
        return {"live_rows": live, "running_on_hosts": running}

    # --- the run ---

    def measure(self) -> dict:
        notes = []
        for target in self.sizes:
            have = len(self.apps) * PER_APP
            available = _mem_available_mib()
            if self.results:
                per_container = (self.results[0]["mem_available_before_mib"] - available) / max(have, 1)
                projected = available - per_container * (target - have)
                if projected < MIN_AVAILABLE_MIB:
                    left = f"{projected:.0f} MiB would be left ({per_container:.1f} MiB per container)"
                    notes.append(f"stopped before {target}: {left}")
                    break
            new = self.add_apps((target - have) // PER_APP)
            start_s = self.start_containers(new)
            time.sleep(SETTLE_S)  # the engines finish what starting hundreds of containers left them to do
            loadavg = Path("/proc/loadavg").read_text().split()[:3]
            adopt_s, adopt_queries = self.guarded_pass()
            steady = self.check_steady(target)
            passes = [self.guarded_pass() for _ in range(self.passes)]
            pieces = self.pieces()
            metering = self.metering_passes()
            self.check_steady(target)
            times = [t for t, _ in passes]
            self.results.append(
                {
                    "containers": target,
                    "apps": len(self.apps),
                    "per_host": target // len(self.hosts),
                    "start_containers_s": round(start_s, 1),
                    "loadavg_when_measuring": loadavg,
                    "adoption_pass_s": round(adopt_s, 3),
                    "adoption_pass_queries": adopt_queries,
                    "pass_s": bench.summary(times),
                    "pass_queries": passes[-1][1],
                    "pieces_s": pieces,
                    "meter_usage_passes": metering,
                    "mem_available_before_mib": available,
                    "mem_available_after_mib": _mem_available_mib(),
                    **steady,
                }
            )
            print(f"{target} containers: pass p50 {bench.percentile(times, 50):.3f} s", file=sys.stderr, flush=True)
        idle = self.idle_apps_step() if self.results and IDLE_APPS else None
        return self.figures(notes, idle)

    def idle_apps_step(self) -> dict:
        """The same containers, plus IDLE_APPS apps scaled to 0: heal_apps visits every app with a current
        release, so this shows what a pass costs per app rather than per container."""
        containers = self.results[-1]["containers"]
        self.add_apps(IDLE_APPS, quantity=0)
        passes = [self.guarded_pass() for _ in range(self.passes)]
        pieces = self.pieces()
        self.check_steady(containers)
        times = [t for t, _ in passes]
        return {
            "containers": containers,
            "apps": len(self.apps),
            "idle_apps": IDLE_APPS,
            "pass_s": bench.summary(times),
            "pass_queries": passes[-1][1],
            "pieces_s": pieces,
        }

    def figures(self, notes: list[str], idle: dict | None) -> dict:
        rows = self.results
        growth = []
        for small, large in itertools.pairwise(rows):
            extra = large["containers"] - small["containers"]
            slope = (large["pass_s"]["p50"] - small["pass_s"]["p50"]) / extra * 1000
            growth.append(f"{small['containers']}→{large['containers']}: +{slope:.2f} ms per container")
        largest = rows[-1] if rows else {}
        return {
            "image": IMAGE,
            "size": dict(zip(("name", "memory_mb", "cpu_millis"), SIZE, strict=True)),
            "replicas_per_app": PER_APP,
            "apps_per_organization": APPS_PER_ORG,
            "organizations": len(self.organizations),
            "passes_per_size": self.passes,
            "target_s": TARGET_S,
            "by_size": rows,
            "growth_p50": growth,
            "largest": largest.get("containers"),
            "largest_pass_p50_s": largest.get("pass_s", {}).get("p50"),
            "meets_target_at_largest": bool(largest) and largest["pass_s"]["p50"] <= TARGET_S,
            "with_idle_apps": idle,
            "notes": notes,
        }


def _mem_available_mib() -> int:
    meminfo = Path("/proc/meminfo").read_text().split()
    return int(meminfo[meminfo.index("MemAvailable:") + 1]) // 1024


def measure(sizes: list[int], passes: int) -> dict:
    bench.django_setup()
    return Measure(sizes, passes).measure()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure([int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])))
