"""GET /api/v1/orgs/<org>/usage/ for an organization with 100,000 records in the current period.

Berth's issue: "usage API for an org with 100,000 records in the current period: p50/p99 latency;
target p99 ≤ 100 ms". The organization has 1,000 containers (three apps, web and worker, four sizes,
two of which change price in the middle of the month) with 100 records each in the current period,
from its 1st to the moment of seeding, the last one still open for the 100 containers still running,
and as many in the previous period. 99 other organizations have 10 containers each, with 100 records
over both periods. Seeded with SQL into the database berth_bench_usage_api, then VACUUM ANALYZE.

The server is gunicorn with the production settings, started as in api_list_apps. Four requests:
JSON and CSV (`format=csv`), each with the default grouping (app, process type, size) and with
`group_by=app,process_type,size,day`. Each is asked 200 times in a row after 10 warm-up requests,
then by 10 concurrent clients 30 times each; each series stops early after 30 s. Every answer must be
a 200 with the expected number of rows. The SQL of usage_for_period is timed with EXPLAIN ANALYZE
(median of 20; also with JIT off, and with parallel query off too, to show what those settings cost),
and its results are checked once against a computation by hand in Python from the records, at a
fixed moment.

Run through benchmarks/run.py; `python benchmarks/usage_api.py seed|explain` are its children.
"""

import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import _billingbench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "usage_api"
DATABASE = _server.database_name("berth_bench_usage_api")
LOG = bench.OUT / f"{NAME}-gunicorn.log"
ORG_CONTAINERS = 1000
RECORDS_PER_CONTAINER = 100  # per period
RUNNING_EVERY = 10  # one container in 10 is still running, its last record open
OTHER_ORGS = 99
OTHER_CONTAINERS = 10
DAY_GROUPS = "app,process_type,size,day"
REQUESTS = {
    "json_default": {},
    "json_by_day": {"group_by": DAY_GROUPS},
    "csv_default": {"format": "csv"},
    "csv_by_day": {"format": "csv", "group_by": DAY_GROUPS},
}
WARMUP = 10
SEQUENTIAL = 200
CLIENTS = 10
PER_CLIENT = 30
# Each series also stops after this long, so a slow answer cannot make the run last for ever.
SERIES_MAX_S = 30.0
EXPLAIN_REPEAT = 20
TARGET_P99_MS = 100.0
REQUEST_TIMEOUT = 30.0


def run(*, workers: int | None = None, sequential: int = SEQUENTIAL, clients: int = CLIENTS) -> dict:
    # Gunicorn's advice for sync workers, as in api_list_apps: (2 x cores) + 1.
    workers = workers or 2 * len(os.sched_getaffinity(0)) + 1
    port = _server.free_port()
    results = {"target_p99_ms": TARGET_P99_MS}
    with bench.MachineWatch() as watch:
        _seed_serve_measure(results, workers, port, sequential, clients)
    results["machine"] = watch.report()
    results["gunicorn_workers"] = workers
    results["meets_target"] = {
        f"{mode}/{name}": figures["latency_ms"]["p99"] <= TARGET_P99_MS
        for mode in ("sequential", "concurrent")
        for name, figures in results[mode].items()
    }
    return results


def _seed_serve_measure(results: dict, workers: int, port: int, sequential: int, clients: int) -> None:
    """Seed, start gunicorn, measure, time the SQL; stop gunicorn and drop the database whatever happens."""
    env = bench.django_env(DATABASE, BERTH_THROTTLE_USER="1000000/min")
    server = None
    try:
        results["postgresql"] = bench.database_recreate(DATABASE)
        results["migrate_s"] = bench.migrate(env)
        bench.progress(f"{NAME}: migrated in {results['migrate_s']} s, seeding")
        seeded = bench.child(__file__, ["seed"], env)
        bench.progress(f"{NAME}: seeded in {seeded['seed_total_s']} s, starting gunicorn")
        token = seeded.pop("token")
        results["seed"] = seeded
        server, command = _server.gunicorn_start(port, workers, env, LOG)
        results["gunicorn"] = _server.command_line(command, port)
        base_url = f"http://127.0.0.1:{port}"
        load = _Load(base_url, seeded["org_slug"], token, seeded["expected_rows"])
        # Every worker answers each kind of request a few times first: a worker's first request loads what
        # Django loads lazily (~0.45 s here), which a long-running server has long done.
        for name in REQUESTS:
            load.concurrent(name, 2 * workers, WARMUP)
        results["sequential"] = {name: load.sequential(name, sequential, server.pid) for name in REQUESTS}
        bench.progress(f"{NAME}: sequential done, {clients} concurrent clients")
        results["concurrent"] = {name: load.concurrent(name, clients, PER_CLIENT) for name in REQUESTS}
        bench.progress(f"{NAME}: timing the SQL")
        results["sql"] = bench.child(__file__, ["explain"], env)
    finally:
        if server is not None:
            _server.stop_group(server.pid, grace_s=30)
        bench.database_drop(DATABASE)


# --- load ----------------------------------------------------------------------------------------


class _Load:
    def __init__(self, base_url: str, org_slug: str, token: str, expected_rows: dict[str, int]):
        self.base_url, self.expected_rows = base_url, expected_rows
        self.headers = {"Authorization": f"Bearer {token}"}
        self.path = f"/api/v1/orgs/{org_slug}/usage/"
        self.last_size = 0

    def sequential(self, name: str, n: int, gunicorn_group: int) -> dict:
        import httpx

        latencies, errors = [], []
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=REQUEST_TIMEOUT) as client:
            for _ in range(WARMUP):
                self._get(client, name, [], errors)
            # PostgreSQL's CPU is not counted: its parallel workers exit before they could be read. See "sql".
            cpu_before = bench.group_cpu_s(gunicorn_group)
            began = time.perf_counter()
            asked = 0
            while asked < n and time.perf_counter() - began < SERIES_MAX_S:
                self._get(client, name, latencies, errors)
                asked += 1
            elapsed = time.perf_counter() - began
            gunicorn_ms = (bench.group_cpu_s(gunicorn_group) - cpu_before) * 1000 / asked
        return {
            "latency_ms": bench.latency_summary(latencies),
            "errors": len(errors),
            "error_samples": errors[:3],
            "requests_per_s": round(asked / elapsed, 1),
            "stopped_by_time_limit": asked < n,
            "gunicorn_cpu_ms_per_request": round(gunicorn_ms, 1),
            "bytes": self.last_size,
        }

    def concurrent(self, name: str, clients: int, per_client: int) -> dict:
        import httpx

        start = threading.Barrier(clients + 1, timeout=60)

        def client_run(_: int) -> tuple[list[float], list[str]]:
            latencies, errors = [], []
            with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=REQUEST_TIMEOUT) as client:
                start.wait()
                deadline = time.perf_counter() + SERIES_MAX_S
                for _ in range(per_client):
                    if time.perf_counter() >= deadline:
                        break
                    self._get(client, name, latencies, errors)
            return latencies, errors

        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(client_run, n) for n in range(clients)]
            start.wait()
            began = time.perf_counter()
            outcomes = [future.result() for future in futures]
            elapsed = time.perf_counter() - began
        latencies = [latency for outcome in outcomes for latency in outcome[0]]
        errors = [error for outcome in outcomes for error in outcome[1]]
        return {
            "clients": clients,
            "stopped_by_time_limit": len(latencies) + len(errors) < clients * per_client,
            "latency_ms": bench.latency_summary(latencies),
            "errors": len(errors),
            "error_samples": errors[:3],
            "requests_per_s": round(len(latencies) / elapsed, 1),
        }

    def _get(self, client, name: str, latencies: list[float], errors: list[str]) -> None:
        import httpx

        began = time.perf_counter()
        try:
            response = client.get(self.path, params=REQUESTS[name])
        except httpx.HTTPError as error:
            errors.append(f"{type(error).__name__}: {error}")
            return
        latency = time.perf_counter() - began
        problem = self._problem(name, response)
        if problem:
            errors.append(problem)
        else:
            latencies.append(latency)
            self.last_size = len(response.content)

    def _problem(self, name: str, response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        expected = self.expected_rows["by_day" if name.endswith("by_day") else "default"]
        if name.startswith("csv"):
            if not response.headers.get("content-type", "").startswith("text/csv"):
                return f"content-type {response.headers.get('content-type')}"
            rows = len(response.text.splitlines()) - 1
        else:
            rows = len(response.json()["rows"])
        # A day more if midnight UTC passes during the run.
        if not expected <= rows <= expected + (self.expected_rows["default"] if name.endswith("by_day") else 0):
            return f"{rows} rows, expected {expected}"
        return None


# --- child: seed ---------------------------------------------------------------------------------


def seed() -> dict:
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from berth.billing.money import period_of, period_start
    from berth.tenancy.models import User
    from berth.tenancy.services import api_token_create

    began = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)
    current = period_start(period_of(now))
    previous = period_start(period_of(current - timedelta(days=1)))
    owner = User.objects.create_user("usage-bench@example.com")
    with connection.cursor() as cursor:
        with transaction.atomic():
            # Half-way through the current period so far, at an odd, whole second.
            half_way = timedelta(seconds=int((now - current).total_seconds()) // 2 + 7)
            fleet = bench.sizes_seed(cursor, price_change=current + half_way)
            common = {"fleet": fleet, "release_config": bench.release_config_encrypted(), "owner_id": owner.pk}
            [org_id] = bench.organizations_seed(
                cursor,
                count=1,
                slug_prefix="bench-usage-",
                containers_per_org=ORG_CONTAINERS,
                running_every=RUNNING_EVERY,
                **common,
            )
            others = bench.organizations_seed(
                cursor, count=OTHER_ORGS, slug_prefix="bench-other-", containers_per_org=OTHER_CONTAINERS, **common
            )
            with bench.IndexesDeferred(cursor, "billing_usagerecord") as deferred:
                bench.without_fk_triggers(cursor)
                per_container = {"records_per_container": RECORDS_PER_CONTAINER}
                bench.records_seed(cursor, org_ids=[org_id], start=previous, end=current, **per_container)
                bench.records_seed(cursor, org_ids=[org_id], start=current, end=now, open_last=True, **per_container)
                bench.records_seed(cursor, org_ids=others, start=previous, end=now, open_last=True, **per_container)
            bench.containers_finish(cursor, [org_id, *others])
        rollup = _rollup_passes()
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT organization_id = %s, period = %s, count(*), count(*) FILTER (WHERE ended_at IS NULL) "
            "FROM billing_usagerecord GROUP BY 1, 2 ORDER BY 1, 2",
            [org_id, current.date()],
        )
        counts = {
            f"{'org' if ours else 'others'}_{'current' if this_period else 'previous'}": {"records": n, "open": open_}
            for ours, this_period, n, open_ in cursor.fetchall()
        }
        cursor.execute("SELECT slug FROM tenancy_organization WHERE id = %s", [org_id])
        slug = cursor.fetchone()[0]
        sizes = bench.relation_sizes(cursor, ("billing_usagerecord",))
    _, token = api_token_create(actor=owner, name="usage benchmark")
    checked = {grouping: _check(org_id, current, now, grouping) for grouping in ("default", "by_day")}
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.get(f"/api/v1/orgs/{slug}/usage/")  # the token's first use writes last_used_at; count a later one
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/v1/orgs/{slug}/usage/")
    assert response.status_code == 200, response.content[:500]
    return {
        "org_slug": slug,
        "token": token,
        "seeded_at": now.isoformat(),
        "records": counts,
        "index_build_s": deferred.built_s,
        "rollup": rollup,
        "seed_total_s": round(time.monotonic() - began, 1),
        "table_mib": sizes,
        "check_by_hand": checked,
        "expected_rows": {grouping: figures["rows"] for grouping, figures in checked.items()},
        "queries_per_request": len(queries.captured_queries),
    }


def _rollup_passes() -> dict:
    """The meter task's roll-up, as it would have run: its first pass over the seeded ledger (one scan of it),
    then a pass with nothing new, then one after 100 of the organization's open records closed."""
    from django.db import connection
    from django.utils import timezone

    from berth.billing.models import NextRevision, UsageDaily, UsageRecord
    from berth.billing.rollup import usage_rollup

    figures = {}
    for label in ("first_pass", "nothing_new", "after_100_closed"):
        if label == "after_100_closed":
            opened = UsageRecord.objects.filter(ended_at__isnull=True, organization__slug__startswith="bench-usage-")
            # As metering closes them: ended now, a new revision. The benchmark reopens none.
            UsageRecord.objects.filter(pk__in=list(opened.values_list("pk", flat=True)[:100])).update(
                ended_at=timezone.now(), revision=NextRevision()
            )
        began = time.perf_counter()
        rows = usage_rollup()
        figures[label] = {"s": round(time.perf_counter() - began, 3), "rows_written": rows}
    figures["rollup_rows"] = UsageDaily.objects.count()
    with connection.cursor() as cursor:
        figures["table_mib"] = bench.relation_sizes(cursor, ("billing_usagedaily",))
    return figures


def _check(org_id: int, period_start_at: datetime, now: datetime, grouping: str) -> dict:
    """usage_for_period at a fixed moment against the same sums done in Python from the records: per
    group, the seconds inside the period and before `now` (split at midnight UTC when grouping by day),
    and their cost, sum of seconds x price / 3600 rounded once, half up."""
    from berth.billing.models import UsageRecord
    from berth.billing.money import round_seconds
    from berth.billing.selectors import DEFAULT_GROUPS, usage_for_period

    groups = DEFAULT_GROUPS if grouping == "default" else tuple(DAY_GROUPS.split(","))
    period = period_start_at.date()
    report = usage_for_period(organization_id=org_id, period=period, group_by=groups, now=now)
    seconds: dict[tuple, Decimal] = {}
    cost: dict[tuple, Decimal] = {}
    records = UsageRecord.objects.filter(organization_id=org_id, period=period).values_list(
        "app_name", "process_type", "size_name", "price_per_hour", "started_at", "ended_at"
    )
    for app, process_type, size, price, started, ended in records:
        end = min(ended or now, now)
        for day_start, part in _parts(started, end, by_day=grouping == "by_day"):
            key = (app, process_type, size) + ((day_start.date().isoformat(),) if grouping == "by_day" else ())
            seconds[key] = seconds.get(key, Decimal(0)) + part
            cost[key] = cost.get(key, Decimal(0)) + part * price
    by_hand = {
        key: (round_seconds(s), (cost[key] / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        for key, s in seconds.items()
    }
    served = {tuple(row[g] for g in groups): (row["seconds"], row["cost"]) for row in report["rows"]}
    if served != by_hand:
        wrong = [key for key in by_hand.keys() | served.keys() if served.get(key) != by_hand.get(key)]
        raise AssertionError(f"usage_for_period({grouping}) differs from the records: {wrong[:3]}")
    return {"rows": len(served), "total_seconds": str(report["total_seconds"]), "total_cost": str(report["total_cost"])}


def _exact(delta: timedelta) -> Decimal:
    """Seconds to the microsecond, as the ledger counts them (a float would not be exact)."""
    return Decimal(delta // timedelta(microseconds=1)) / 1_000_000


def _parts(start: datetime, end: datetime, *, by_day: bool):
    """(day, exact seconds) of [start, end), cut at midnight UTC if by_day."""
    if not by_day:
        yield start, _exact(end - start)
        return
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        following = day + timedelta(days=1)
        part = _exact(min(end, following) - max(start, day))
        if part > 0:
            yield day, part
        day = following


# --- child: explain ------------------------------------------------------------------------------


def explain() -> dict:
    """EXPLAIN ANALYZE of the SQL usage_for_period runs, EXPLAIN_REPEAT times per grouping, with the server's
    settings and, to show what they cost, with JIT compilation off and with parallel query off too."""
    from django.db import connection
    from django.utils import timezone

    from berth.billing.money import period_of
    from berth.billing.selectors import DEFAULT_GROUPS, usage_for_period
    from berth.tenancy.models import Organization

    org = Organization.objects.get(slug__startswith="bench-usage-")
    figures = {}
    for grouping, groups in (("default", DEFAULT_GROUPS), ("by_day", tuple(DAY_GROUPS.split(",")))):
        captured = []

        def capture(execute, sql, params, many, context, captured=captured):
            captured.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            usage_for_period(
                organization_id=org.pk, period=period_of(timezone.now()), group_by=groups, now=timezone.now()
            )
        sql, params = captured[-1]  # the report; before it, the roll-up's lock and mark
        figures[grouping] = {
            name: _explain_timed(sql, params, settings, f"{grouping}-{name}")
            for name, settings in EXPLAIN_SETTINGS.items()
        }
    with connection.cursor() as cursor:
        figures["server_settings"] = bench.server_settings(cursor)
    return figures


# What-ifs of the session's settings, not of Berth's SQL.
EXPLAIN_SETTINGS = {
    "as_configured": (),
    "jit_off": ("SET jit = off",),
    "jit_off_no_parallel": ("SET jit = off", "SET max_parallel_workers_per_gather = 0"),
}


def _explain_timed(sql: str, params: dict, settings: tuple[str, ...], label: str) -> dict:
    from django.db import connection

    plans = []
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(setting)
        for _ in range(EXPLAIN_REPEAT):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
            plans.append(cursor.fetchone()[0][0])
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        text = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET ALL")
    executions = [plan["Execution Time"] for plan in plans]
    path = bench.OUT / f"{NAME}-explain-{label}.txt"
    path.write_text(f"{'; '.join(settings)}\n{' '.join(sql.split())}\n\n{text}\n")
    summary = bench.plan_summary(plans[-1])
    return {
        "execution_ms": {
            "median": round(statistics.median(executions), 1),
            "min": round(min(executions), 1),
            "max": round(max(executions), 1),
        },
        "jit_ms_median": round(
            statistics.median(plan.get("JIT", {}).get("Timing", {}).get("Total", 0) for plan in plans), 1
        ),
        "rows": plans[-1]["Plan"]["Actual Rows"],
        "plan_file": str(path.relative_to(bench.REPO)),
        **{k: v for k, v in summary.items() if k in ("planning_ms", "shared_blocks", "nodes")},
    }


if __name__ == "__main__" and sys.argv[1:] in (["seed"], ["explain"]):
    bench.django_setup()
    print(json.dumps(seed() if sys.argv[1] == "seed" else explain(), default=str))
