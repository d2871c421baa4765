"""Invoices for 1,000 organizations from 1,000,000 usage records (Berth's issue; target ≤ 10 s).

The ledger of the previous month (1,000 organizations x 10 containers x 100 records, three apps, two
process types, four sizes, two of which change price mid-month) is seeded with SQL into a database of
its own, berth_bench_invoices, vacuumed and analyzed. Each scenario then runs on a fresh copy of it
(CREATE DATABASE … TEMPLATE), so every one starts from the same unbilled month:

- finalize: `finalize_period(<previous month>)`, timed in the child process, statement by statement
  and the commit (the deferred foreign-key checks run there), with the peak memory of the Python
  process and of its PostgreSQL backend. Then the invoices are checked: one finalized invoice per
  organization, every record billed once, totals equal to their lines, and three organizations'
  invoices equal to a computation by hand, in Python, from their records. Then `invoices_run`, the
  task beat runs every 10 minutes, at the real now and 10 minutes later (the month is closed, the
  current one has no usage yet), and EXPLAIN ANALYZE of the ORM queries it starts with.
- month_end: `invoices_run` 20 and 10 minutes before midnight of the 1st, when the month being
  drafted holds the 1,000,000 records: its drafts made, then refreshed.
- explain: `finalize_period` again, each of its raw SQL statements run as EXPLAIN (ANALYZE, BUFFERS,
  WAL), foreign keys checked immediately so their cost shows in the statement that causes it. Plans
  are written to benchmarks/out/invoice_generation-explain.json.

Run through benchmarks/run.py; `python benchmarks/invoice_generation.py seed|measure …` are its children.
"""

import json
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import _billingbench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "invoice_generation"
DATABASE = _server.database_name("berth_bench_invoices")
ORGANIZATIONS = 1000
CONTAINERS_PER_ORG = 10
RECORDS_PER_CONTAINER = 100
SAMPLE_ORGS = 3
TARGET_S = 10.0
SCENARIOS = ("finalize", "month_end", "explain")
# Not run by default (20 to 30 s each, after the 40 s seed): finalize_period on a copy whose ledger lacks
# some of Berth's indexes, to show what the UPDATE that marks the records billed spends its time on.
# `run(scenarios=VARIANTS)` or `python benchmarks/invoice_generation.py variants`.
VARIANTS = ("finalize:without_exclusion", "finalize:without_exclusion_or_invoice_indexes")
EXPLAIN_OUT = bench.OUT / f"{NAME}-explain.json"


def run(*, scenarios: tuple[str, ...] = SCENARIOS) -> dict:
    now = datetime.now(UTC)
    period = _previous_period(now)
    results = {"period": period.isoformat(), "target_s": TARGET_S}
    with bench.MachineWatch() as watch:
        _seed_and_measure(results, scenarios, period, now)
    results["machine"] = watch.report()
    finalize_s = results.get("finalize", {}).get("finalize_period_s")
    results["meets_target"] = None if finalize_s is None else finalize_s <= TARGET_S
    return results


def _seed_and_measure(results: dict, scenarios: tuple[str, ...], period: date, now: datetime) -> None:
    """Seed the template database, run each scenario in a child on a copy of it, drop them all."""
    env = bench.django_env(DATABASE)
    copies = [f"{DATABASE}_{n}" for n, _ in enumerate(scenarios)]
    try:
        results["postgresql"] = bench.database_recreate(DATABASE)
        results["migrate_s"] = bench.migrate(env)
        bench.progress(f"{NAME}: migrated in {results['migrate_s']} s, seeding")
        results["seed"] = bench.child(__file__, ["seed", period.isoformat()], env)
        bench.progress(f"{NAME}: seeded in {results['seed']['seed_total_s']} s")
        for scenario, copy in zip(scenarios, copies, strict=True):
            began = time.monotonic()
            bench.database_clone(DATABASE, copy)
            clone_s = round(time.monotonic() - began, 1)
            child_env = {**env, "DATABASE_URL": f"{bench.SERVER}/{copy}"}
            bench.progress(f"{NAME}: {scenario} on a copy made in {clone_s} s")
            measured = bench.child(__file__, ["measure", scenario, period.isoformat(), now.isoformat()], child_env)
            time.sleep(1)  # the backend has exited; let its statistics land
            measured["database_stats"] = bench.database_stats(copy)
            results[scenario] = {"clone_s": clone_s, **measured}
            bench.database_drop(copy)
    finally:
        for database in (*copies, DATABASE):
            bench.database_drop(database)


def _previous_period(now: datetime) -> date:
    first = date(now.year, now.month, 1)
    return (first - timedelta(days=1)).replace(day=1)


def _period_bounds(period: date) -> tuple[datetime, datetime]:
    start = datetime(period.year, period.month, 1, tzinfo=UTC)
    end = datetime(period.year + period.month // 12, period.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


# --- child: seed ---------------------------------------------------------------------------------


def seed(period: date) -> dict:
    from django.db import connection, transaction

    start, end = _period_bounds(period)
    began = time.monotonic()
    with connection.cursor() as cursor:
        with transaction.atomic():
            # Mid-month, at an odd moment: records end there and the next ones start at the new price.
            fleet = bench.sizes_seed(cursor, price_change=start + timedelta(days=15, hours=7, minutes=13))
            org_ids = bench.organizations_seed(
                cursor,
                count=ORGANIZATIONS,
                slug_prefix="bench-org-",
                containers_per_org=CONTAINERS_PER_ORG,
                fleet=fleet,
                release_config=bench.release_config_encrypted(),
            )
            inserted = time.monotonic()
            with bench.IndexesDeferred(cursor, "billing_usagerecord") as deferred:
                bench.without_fk_triggers(cursor)
                records = bench.records_seed(
                    cursor, org_ids=org_ids, start=start, end=end, records_per_container=RECORDS_PER_CONTAINER
                )
                records_s = round(time.monotonic() - inserted, 1)
            bench.containers_finish(cursor, org_ids)
        committed = time.monotonic()
        cursor.execute("VACUUM ANALYZE")
        vacuum_s = round(time.monotonic() - committed, 1)
        cursor.execute(
            "SELECT count(DISTINCT organization_id), count(DISTINCT container_id), count(DISTINCT price_per_hour), "
            "count(DISTINCT (organization_id, app_name, process_type, size_name, price_per_hour)), "
            "min(started_at), max(ended_at), sum(EXTRACT(EPOCH FROM ended_at - started_at)) / 3600 "
            "FROM billing_usagerecord"
        )
        orgs, containers, prices, lines, first, last, hours = cursor.fetchone()
        sizes = bench.relation_sizes(cursor, ("billing_usagerecord", "fleet_container"))
        settings = bench.server_settings(cursor)
    return {
        "organizations": orgs,
        "containers": containers,
        "records": records,
        "distinct_prices": prices,
        "expected_invoice_lines": lines,
        "first_start": first.isoformat(),
        "last_end": last.isoformat(),
        "billed_hours": round(float(hours)),
        "insert_records_s": records_s,
        "index_build_s": deferred.built_s,
        "vacuum_analyze_s": vacuum_s,
        "seed_total_s": round(time.monotonic() - began, 1),
        "table_mib": sizes,
        "server_settings": settings,
    }


# --- child: measure ------------------------------------------------------------------------------


def measure(scenario: str, period: date, now: datetime) -> dict:
    from django.db import connection

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    if scenario.startswith("finalize:"):
        _indexes_drop(scenario.partition(":")[2])
        return _finalize(period, now, backend, then_periodic=False)
    return {"finalize": _finalize, "month_end": _month_end, "explain": _explain}[scenario](period, now, backend)


def _indexes_drop(variant: str) -> None:
    """Drop the exclusion constraint (its GiST index), and for the second variant the two indexes on
    invoice_id too, so the UPDATE of invoice_id has fewer index entries to write."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_usagerecord DROP CONSTRAINT usage_no_overlap")
        if variant == "without_exclusion_or_invoice_indexes":
            cursor.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = 'billing_usagerecord'::regclass AND a.attname = 'invoice_id'"
            )
            for (index,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX {index}")
        elif variant != "without_exclusion":
            raise ValueError(f"no variant {variant}")


def _timed(call, backend: int) -> dict:
    """Run call() with its statements, commits, wall time, CPU and peak memory measured."""
    from django.db import connection

    timer = bench.StatementTimer()
    timer.commit_timed(connection)
    bench.peak_rss_reset()
    rss_before = bench.proc_status(os.getpid())["VmRSS"]
    cpu_before, backend_cpu_before = time.process_time(), bench.proc_cpu_s(backend)
    with bench.MemorySampler({"postgres_backend": backend}) as sampler, connection.execute_wrapper(timer):
        began = time.perf_counter()
        value = call()
        wall = time.perf_counter() - began
    del connection.commit  # back to the class's method
    statements_ms = sum(s["ms"] for s in timer.statements)
    return {
        "wall_s": round(wall, 2),
        "returned": value,
        "statements": len(timer.statements),
        "statements_s": round(statements_ms / 1000, 2),
        "commit_s": round(sum(timer.commits) / 1000, 2),
        "heaviest_statements": timer.heaviest(),
        "python_cpu_s": round(time.process_time() - cpu_before, 2),
        "python_rss_mib": {
            "before": round(rss_before / 1024, 1),
            "peak": round(bench.proc_status(os.getpid())["VmHWM"] / 1024, 1),
        },
        "backend_cpu_s": round(bench.proc_cpu_s(backend) - backend_cpu_before, 2),
        "backend_peak_mib": sampler.mib()["postgres_backend"],
    }


def _finalize(period: date, now: datetime, backend: int, then_periodic: bool = True) -> dict:
    """finalize_period, checked; then the periodic task at the real now and 10 minutes later, when the
    month is closed and the current one has no usage yet (the cost of the task's fixed steps)."""
    from berth.billing.invoicing import finalize_period

    measured = _timed(lambda: finalize_period(period), backend)
    result = {"finalize_period_s": measured["wall_s"], **measured, "check": _check(period)}
    if then_periodic:
        moments = (("invoices_run_after_month_end", now), ("ten_minutes_later", now + timedelta(minutes=10)))
        result.update(_invoices_runs(moments, backend))
        result["queries_explained"] = _periodic_queries_explained(now)
    return result


def _explain(period: date, now: datetime, backend: int) -> dict:
    from django.db import connection

    from berth.billing.invoicing import finalize_period

    explainer = bench.Explainer()
    began = time.perf_counter()
    with connection.execute_wrapper(explainer):
        finalize_period(period)
    wall = time.perf_counter() - began
    bench.OUT.mkdir(exist_ok=True)
    EXPLAIN_OUT.write_text(json.dumps(explainer.plans, indent=1, default=str))
    return {
        "wall_s_with_explain": round(wall, 2),
        "plans_file": str(EXPLAIN_OUT.relative_to(bench.REPO)),
        "statements": [{"sql": plan["sql"][:160], **bench.plan_summary(plan["plan"])} for plan in explainer.plans],
        "not_explainable": explainer.skipped,
    }


def _month_end(period: date, now: datetime, backend: int) -> dict:
    """The periodic task as the month ends: its drafts, from a month of records, made then refreshed."""
    _, end = _period_bounds(period)
    moments = (
        ("invoices_run_first_drafts", end - timedelta(minutes=20)),
        ("invoices_run_refresh", end - timedelta(minutes=10)),
    )
    return _invoices_runs(moments, backend)


def _invoices_runs(moments, backend: int) -> dict:
    """invoices_run at each (label, moment), timed as a whole and step by step."""
    from django.db.models import Count

    from berth.billing import invoicing
    from berth.billing.models import Invoice, InvoiceLine

    steps: list[dict] = []
    # invoices_run looks these up in its module when it runs, so timing wrappers put there time each step.
    for name in ("usage_sync_all", "periods_to_finalize", "finalize_period", "refresh_drafts"):
        setattr(invoicing, name, _step_timer(getattr(invoicing, name), name, steps))
    runs = {}
    for label, moment in moments:
        steps.clear()
        measured = _timed(lambda moment=moment: invoicing.invoices_run(now=moment), backend)
        runs[label] = {
            "now": moment.isoformat(),
            **measured,
            "steps_s": {step["name"]: step["s"] for step in steps},
            "invoices": dict(Invoice.objects.values_list("state").order_by().annotate(n=Count("id"))),
            "lines": InvoiceLine.objects.count(),
        }
    return runs


def _periodic_queries_explained(now: datetime) -> dict:
    """EXPLAIN ANALYZE of the ORM queries invoices_run makes before any invoicing SQL, as Django writes
    them and as they could be written, on the month-old, finalized ledger."""
    from berth.billing.metering import ENDED
    from berth.billing.models import UsageRecord
    from berth.billing.money import period_of
    from berth.fleet.models import Container

    current = period_of(now)
    before_current = UsageRecord.objects.filter(period__lt=current)
    queries = {
        # periods_to_finalize's "with_usage": Meta.ordering puts the ordering columns into the DISTINCT.
        "periods_with_usage_as_written": before_current.values_list("period", flat=True).distinct(),
        "periods_with_usage_order_by_cleared": before_current.order_by().values_list("period", flat=True).distinct(),
        "periods_with_unbilled_usage": before_current.filter(invoice__isnull=True)
        .order_by()
        .values_list("period", flat=True)
        .distinct(),
        # usage_sync_all's "open_ended" and "unrecorded" (the meter task runs them every 30 s).
        "open_records_of_ended_containers": UsageRecord.objects.filter(ended_at__isnull=True)
        .exclude(container__state__in=Container.LIVE)
        .values_list("container_id", flat=True),
        "ended_containers_without_records": Container.objects.filter(
            state__in=ENDED, started_at__isnull=False, usage__isnull=True
        ).values_list("pk", flat=True),
    }
    return {name: _explained(queryset) for name, queryset in queries.items()}


def _explained(queryset) -> dict:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]
    summary = bench.plan_summary(plan)
    return {"sql": " ".join(sql.split())[:300], "rows": plan["Plan"]["Actual Rows"], **summary}


def _step_timer(function, name: str, steps: list[dict]):
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            steps.append({"name": name, "s": round(time.perf_counter() - began, 2)})

    return timed


# --- checking the invoices -----------------------------------------------------------------------


def _check(period: date) -> dict:
    """What finalize_period produced, against the ledger; raises if an invoice is wrong."""
    from django.db import connection

    from berth.billing.models import Invoice, InvoiceLine, UsageRecord

    invoices = Invoice.objects.filter(period=period)
    with connection.cursor() as cursor:
        # Every invoice's total is the sum of its lines; every record's seconds are on a line, once.
        cursor.execute(
            """
            SELECT
              (SELECT count(*) FROM billing_invoice i
               WHERE i.total <> (SELECT COALESCE(SUM(amount), 0) FROM billing_invoiceline l WHERE l.invoice_id = i.id)),
              (SELECT SUM(seconds) FROM billing_invoiceline),
              (SELECT SUM(EXTRACT(EPOCH FROM ended_at - started_at)) FROM billing_usagerecord WHERE period = %s),
              -- Records of a period recorded before it closed are billed by its invoice without being
              -- marked; only late ones carry invoice_id, and none may be left unmarked.
              (SELECT count(*) FROM billing_usagerecord WHERE period = %s AND late AND invoice_id IS NULL),
              (SELECT count(*) FROM billing_usagerecord r JOIN billing_invoice i ON i.id = r.invoice_id
               WHERE i.organization_id <> r.organization_id OR i.period <> r.period)
            """,
            [period, period],
        )
        totals_off, line_seconds, record_seconds, unbilled, misbilled = cursor.fetchone()
    org_ids = sorted(invoices.values_list("organization_id", flat=True))
    samples = [_by_hand(org, period) for org in random.Random(2026).sample(org_ids, SAMPLE_ORGS)]
    result = {
        "invoices": invoices.count(),
        "finalized": invoices.filter(state=Invoice.State.FINALIZED).count(),
        "lines": InvoiceLine.objects.filter(invoice__period=period).count(),
        "grand_total": str(sum(invoices.values_list("total", flat=True), Decimal(0))),
        "totals_not_sum_of_lines": totals_off,
        "line_seconds_equal_record_seconds": line_seconds == record_seconds,
        "records_unbilled": unbilled,
        "records_on_wrong_invoice": misbilled,
        "records_billed": UsageRecord.objects.filter(period=period, invoice__isnull=False).count(),
        "samples": samples,
    }
    wrong = [s for s in samples if not s["match"]]
    if wrong or totals_off or unbilled or misbilled or line_seconds != record_seconds:
        raise AssertionError(f"invoices do not match the ledger: {json.dumps(result, default=str)}")
    return result


def _by_hand(organization_id: int, period: date) -> dict:
    """One organization's invoice computed in Python from its records: per (app, process type, size,
    price), the sum of exact seconds times the price per hour / 3600, rounded half up to the cent."""
    from berth.billing.models import Invoice, UsageRecord

    seconds: dict[tuple, int] = {}
    records = UsageRecord.objects.filter(organization_id=organization_id, period=period).values_list(
        "app_name", "process_type", "size_name", "price_per_hour", "started_at", "ended_at"
    )
    for app, process_type, size, price, started, ended in records:
        key = (app, process_type, size, price)
        seconds[key] = seconds.get(key, 0) + int((ended - started).total_seconds())
    by_hand = {
        key: (s, (Decimal(s) * key[3] / Decimal(3600)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        for key, s in seconds.items()
    }
    invoice = Invoice.objects.get(organization_id=organization_id, period=period)
    lines = {
        (line.app_name, line.process_type, line.size_name, line.price_per_hour): (line.seconds, line.amount)
        for line in invoice.lines.all()
    }
    total = sum((amount for _, amount in by_hand.values()), Decimal(0))
    return {
        "organization": invoice.organization.slug,
        "records": len(records),
        "lines": len(lines),
        "total_by_hand": str(total),
        "invoice_total": str(invoice.total),
        "match": total == invoice.total and lines == by_hand,
    }


if __name__ == "__main__" and sys.argv[1:] == ["variants"]:
    print(json.dumps(run(scenarios=VARIANTS), indent=1, default=str))
elif __name__ == "__main__" and sys.argv[1:2] in (["seed"], ["measure"]):
    bench.django_setup()
    if sys.argv[1] == "seed":
        print(json.dumps(seed(date.fromisoformat(sys.argv[2]))))
    else:
        _, _, scenario, period, now = sys.argv
        print(json.dumps(measure(scenario, date.fromisoformat(period), datetime.fromisoformat(now)), default=str))
