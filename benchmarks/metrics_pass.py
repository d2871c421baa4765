"""What metrics cost: rows and bytes per app per day in PostgreSQL, the time to record a pass and to read
a chart, and the time to read the running containers' counters from real engines (docs/metrics.md).

1. `day`: in its own database (migrated), one app with three replica slots (web.1, web.2, worker.1)
   routed through two routers, sampled every 15 s (BERTH_METRICS_SAMPLE_SECONDS) for one whole day:
   5,760 passes, each recorded through `metrics.services` as the worker records it (one
   `container_readings_record` and one `route_readings_record` per pass). Reports the rows and the
   bytes (tables with their indexes, after VACUUM) the day left, the time per pass recorded, the
   time of the API's read for an hour, a day and a week, and of pruning the day's minute buckets.
2. `engines`: CONTAINERS containers (berth-test/nobind:v1, a shell that sleeps) started on the test
   bed's hosts (BERTH_TEST_HOSTS, as the tests use), read PASSES times the way the worker's pass reads
   them (`worker.metrics._read_host`, one thread per host, one one-shot stats call per container).
   They carry no `berth.managed` label, so no Berth running on the same hosts would adopt them.
"""

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import _billingbench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script

NAME = "metrics_pass"
DATABASE = "berth_bench_metrics"
PASS_S = 15
SLOTS = (("web", 1), ("web", 2), ("worker", 1))
ROUTERS = 2
CONTAINERS = 40
PASSES = 5
IMAGE = "berth-test/nobind:v1"


def run() -> dict:
    bench.database_recreate(DATABASE)
    try:
        env = bench.django_env(DATABASE)
        bench.migrate(env)
        day = bench.child(__file__, ["day"], env, timeout=1800)
        engines = bench.child(__file__, ["engines"], env, timeout=600)
    finally:
        bench.database_drop(DATABASE)
    return {**day, **engines}


def _ms(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


def day() -> dict:
    from django.db import connection

    from berth.applications.models import App
    from berth.metrics.selectors import app_metrics
    from berth.metrics.services import (
        ContainerReading,
        RouteReading,
        container_readings_record,
        metrics_prune,
        route_readings_record,
    )
    from berth.tenancy.models import Organization

    organization = Organization.objects.create(slug="bench", name="Bench")
    app = App.objects.create(organization=organization, name="shop")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    passes = 24 * 3600 // PASS_S
    timings = []
    for n in range(passes + 1):
        moment = start + timedelta(seconds=n * PASS_S)
        containers = [
            ContainerReading(
                app_id=app.pk,
                process_type=process_type,
                index=index,
                canary=False,
                docker_id=f"{process_type}-{index}",
                read_at=moment,
                cpu_ns=n * PASS_S * 50_000_000 * index,
                memory_bytes=(30 + n % 7) * 1024 * 1024,
                memory_limit_bytes=256 * 1024 * 1024,
                cpu_limit_millis=500,
            )
            for process_type, index in SLOTS
        ]
        requests = n * 150
        routes = [
            RouteReading(
                router_id=router,
                backend="b00001",
                app_id=app.pk,
                read_at=moment,
                life="1@1",
                counters={
                    "requests": requests,
                    "status_1xx": 0,
                    "status_2xx": requests - n,
                    "status_3xx": 0,
                    "status_4xx": n // 2,
                    "status_5xx": n - n // 2,
                    "status_other": 0,
                },
                response_ms=20 + n % 11,
                total_ms=25 + n % 11,
            )
            for router in range(1, ROUTERS + 1)
        ]
        began = time.perf_counter()
        container_readings_record(readings=containers)
        route_readings_record(readings=routes)
        timings.append(time.perf_counter() - began)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE metrics_containerbucket")
        cursor.execute("VACUUM ANALYZE metrics_routebucket")
        sizes = {}
        for table in ("metrics_containerbucket", "metrics_routebucket"):
            cursor.execute(
                f"SELECT count(*) FILTER (WHERE step = 60), count(*) FILTER (WHERE step = 3600), "  # noqa: S608
                f"pg_total_relation_size('{table}') FROM {table}"
            )
            minutes, hours, size = cursor.fetchone()
            sizes[table.removeprefix("metrics_")] = {"minute_rows": minutes, "hour_rows": hours, "bytes": size}
    now = start + timedelta(days=1)
    reads = {}
    for period in ("hour", "day", "week"):
        spent = []
        for _ in range(20):
            began = time.perf_counter()
            app_metrics(app=app, period=period, now=now)
            spent.append(time.perf_counter() - began)
        reads[f"read_{period}_ms"] = _ms(spent)["p50_ms"]
    began = time.perf_counter()
    pruned = metrics_prune(now=now + timedelta(hours=72))
    prune_s = time.perf_counter() - began
    rows = sum(s["minute_rows"] + s["hour_rows"] for s in sizes.values())
    total_bytes = sum(s["bytes"] for s in sizes.values())
    return {
        "passes": passes,
        "record_pass": _ms(timings),
        "rows_per_app_day": rows,
        "bytes_per_app_day": total_bytes,
        "bytes_per_row": round(total_bytes / rows),
        "tables": sizes,
        **reads,
        "prune_minutes_s": round(prune_s, 3),
        "pruned": pruned,
    }


def engines() -> dict:
    import docker

    from berth.fleet.models import Container, DockerHost, Size
    from worker.metrics import _read_host

    indices = [int(i) for i in os.environ.get("BERTH_TEST_HOSTS", "1,2").split(",") if i.strip()]
    hosts = [DockerHost(pk=i, name=f"h{i}", engine_url=f"unix:///run/berth-testbed/h{i}/docker.sock") for i in indices]
    size = Size(name="bench", memory_mb=16, cpu_millis=100)
    started: dict[int, list[Container]] = {host.pk: [] for host in hosts}
    clients = {host.pk: docker.APIClient(base_url=host.engine_url, timeout=60) for host in hosts}
    try:
        for n in range(CONTAINERS):
            host = hosts[n % len(hosts)]
            api = clients[host.pk]
            config = api.create_host_config(mem_limit=16 * 1024 * 1024, nano_cpus=100_000_000, cap_drop=["ALL"])
            created = api.create_container(IMAGE, host_config=config, labels={"berth.bench": NAME})
            api.start(created["Id"])
            started[host.pk].append(
                Container(app_id=1, process_type="worker", index=n, docker_id=created["Id"], size=size)
            )
        time.sleep(2)  # let every container's process start before it is read
        passes = []
        read = 0
        for _ in range(PASSES):
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                results = list(pool.map(lambda host: _read_host(host, started[host.pk]), hosts))
            passes.append(time.perf_counter() - began)
            read = sum(len(r) for r in results)
    finally:
        for host in hosts:
            for container in started[host.pk]:
                clients[host.pk].remove_container(container.docker_id, force=True)
            clients[host.pk].close()
    pass_ms = _ms(passes)
    return {
        "engine_hosts": len(hosts),
        "engine_containers": CONTAINERS,
        "engine_read_per_pass": read,
        "engine_pass_p50_ms": pass_ms["p50_ms"],
        "engine_pass_max_ms": round(max(passes) * 1000, 2),
        "engine_ms_per_container_per_host": round(statistics.median(passes) * 1000 / (CONTAINERS / len(hosts)), 2),
    }


if __name__ == "__main__":
    bench.django_setup()
    print(json.dumps({"day": day, "engines": engines}[sys.argv[1]]()))
