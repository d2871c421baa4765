"""The daily roll-up gives usage reads exactly the numbers summing the ledger gives, whatever moment is
asked and however far the roll-up has got: a running container across midnight, a price change, a record
closed later, an empty interval at midnight, a late record of a closed period, an app deleted."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from berth.applications.services import app_delete
from berth.billing.invoicing import finalize_period
from berth.billing.metering import usage_close_for_app, usage_sync
from berth.billing.models import SizePrice, UsageDaily, UsageRecord
from berth.billing.money import period_end, period_start, round_amount, round_seconds
from berth.billing.rollup import usage_rollup
from berth.billing.selectors import app_costs, usage_for_period
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, OrganizationFactory, SizeFactory
from tests.timing import at

OCTOBER, NOVEMBER = date(2026, 10, 1), date(2026, 11, 1)
GROUPINGS = [("app", "process_type", "size"), ("app", "process_type", "size", "day"), ("day",), ("size",), ()]
# Mid-day, exactly midnight, a microsecond after it, while a closed record is still running at that moment,
# after the price change, and past the period's end.
MOMENTS = [
    at(2026, 11, 3, 6),
    at(2026, 11, 3, 10, 30),
    at(2026, 11, 4),
    at(2026, 11, 4, 0, 0, 0, 1),
    at(2026, 11, 10, 13),
    at(2026, 11, 12, 8, 15, 30),
    at(2026, 12, 2),
]


def ledger_report(*, organization_id: int, period: date, group_by: tuple[str, ...], now: datetime) -> dict:
    """The usage report as it was computed before the roll-up, straight from every record (kept here as
    the reference the roll-up must agree with)."""
    groups = {"app": "r.app_name", "process_type": "r.process_type", "size": "r.size_name", "day": "d.day"}
    cutoff = min(now, period_end(period))
    columns = [groups[name] for name in group_by]
    if "day" in group_by:
        source = """
            FROM billing_usagerecord r
            CROSS JOIN LATERAL generate_series(
                date_trunc('day', r.started_at AT TIME ZONE 'UTC'),
                date_trunc('day', (COALESCE(r.ended_at, %(cutoff)s) - interval '1 microsecond') AT TIME ZONE 'UTC'),
                interval '1 day') AS d(day)
        """
        lower = "GREATEST(r.started_at, d.day AT TIME ZONE 'UTC')"
        upper = "LEAST(COALESCE(r.ended_at, %(cutoff)s), (d.day + interval '1 day') AT TIME ZONE 'UTC', %(cutoff)s)"
    else:
        source, lower, upper = (
            "FROM billing_usagerecord r",
            "r.started_at",
            "LEAST(COALESCE(r.ended_at, %(cutoff)s), %(cutoff)s)",
        )
    seconds = f"GREATEST(EXTRACT(EPOCH FROM ({upper} - {lower})), 0)"
    select = ", ".join([*columns, f"SUM({seconds})", f"SUM({seconds} * r.price_per_hour) / 3600", "MIN(r.currency)"])
    group = f"GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
    sql = (
        f"SELECT {select} {source} WHERE r.organization_id = %(org)s AND r.started_at < %(end)s "
        f"AND r.period = %(period)s AND r.started_at < %(cutoff)s {group}"
    )
    params = {"org": organization_id, "period": period, "end": period_end(period), "cutoff": cutoff}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    report = []
    for row in rows:
        keys = dict(zip(group_by, row[: len(columns)], strict=True))
        if "day" in keys:
            keys["day"] = keys["day"].date().isoformat()
        seconds = round_seconds(Decimal(row[len(columns)] or 0))
        report.append({**keys, "seconds": seconds, "cost": round_amount(Decimal(row[-2] or 0))})
    return {"currency": next((row[-1] for row in rows if row[-1]), "USD"), "rows": report}


def assert_reads_match_the_ledger(org, periods=(OCTOBER, NOVEMBER), moments=MOMENTS) -> int:
    """Every grouping at every moment, roll-up and ledger; returns how many reports were compared."""
    compared = 0
    for period in periods:
        for now in [m for m in moments if m >= period_start(period)]:
            for group_by in GROUPINGS:
                expected = ledger_report(organization_id=org.pk, period=period, group_by=group_by, now=now)
                served = usage_for_period(organization_id=org.pk, period=period, group_by=group_by, now=now)
                assert (served["currency"], served["rows"]) == (expected["currency"], expected["rows"]), (
                    period,
                    now,
                    group_by,
                )
                compared += 1
            # The org home's read: a few apps' costs and the total, as the report by app has them.
            by_app = usage_for_period(organization_id=org.pk, period=period, group_by=("app",), now=now)
            asked = ["shop", "no-such-app"]
            costs = app_costs(organization_id=org.pk, period=period, apps=asked, now=now)
            assert costs["costs"] == {row["app"]: row["cost"] for row in by_app["rows"] if row["app"] in asked}
            assert (str(costs["total_cost"]), costs["currency"]) == (str(by_app["total_cost"]), by_app["currency"])
    return compared


@pytest.fixture
def world(db):
    from berth.applications.models import Release

    org = OrganizationFactory(slug="acme")
    size = SizeFactory(name="small")
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.036"), effective_from=at(2026, 1, 1))
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.090"), effective_from=at(2026, 11, 10, 12))
    host = HostFactory()
    apps = {}

    def container(app_name, process_type, start, end=None, *, now):
        if app_name not in apps:
            apps[app_name] = AppFactory(organization=org, name=app_name)
            Release.objects.create(app=apps[app_name], version=1, image="x", process_types={}, config={})
        row = ContainerFactory(
            host=host,
            app=apps[app_name],
            release=apps[app_name].releases.get(),
            size=size,
            process_type=process_type,
            started_at=start,
            finished_at=end,
            state=Container.State.REMOVED if end else Container.State.RUNNING,
        )
        usage_sync([row.pk], now=now)
        return row

    return {"org": org, "apps": apps, "container": container}


def test_reads_with_the_rollup_equal_sums_over_the_ledger(world):
    org, container = world["org"], world["container"]
    # October into November: split at midnight of the 1st, both parts closed.
    container("shop", "web", at(2026, 10, 31, 20), at(2026, 11, 1, 2, 0, 0, 250000), now=at(2026, 11, 1, 3))
    # Running across midnight of the 2nd, then across the price change (its open record closes later).
    running = container("shop", "web", at(2026, 11, 2, 22, 0, 7), now=at(2026, 11, 3, 6))
    # Closed, from 10:00 to 11:00 on the 3rd: at 10:30 it is still running.
    container("shop", "worker", at(2026, 11, 3, 10), at(2026, 11, 3, 11), now=at(2026, 11, 3, 11))
    # An empty interval exactly at midnight: a group of 0 seconds in the report, never a day.
    container("blog", "web", at(2026, 11, 4), at(2026, 11, 4), now=at(2026, 11, 4))
    assert assert_reads_match_the_ledger(org) > 0  # nothing rolled up yet: all from the ledger

    assert usage_rollup() > 0
    assert (
        UsageDaily.objects.filter(organization=org, day=date(2026, 11, 3), process_type="worker").get().seconds == 3600
    )
    assert_reads_match_the_ledger(org)

    # The price change closes the running container's record and opens one at the new price: the closed
    # one is read from the ledger until the next pass, from the roll-up after.
    usage_sync([running.pk], now=at(2026, 11, 12, 8))
    assert UsageRecord.objects.filter(container=running).count() == 2
    assert_reads_match_the_ledger(org)
    usage_rollup()
    assert UsageDaily.objects.filter(organization=org, price_per_hour=Decimal("0.09")).count() == 0  # still open
    assert_reads_match_the_ledger(org)

    # October closes; then a host that was away reports a container that ran in October: a late record.
    finalize_period(OCTOBER)
    container("shop", "web", at(2026, 10, 20, 23), at(2026, 10, 21, 1, 30), now=at(2026, 11, 12, 9))
    assert UsageRecord.objects.filter(late=True).count() == 1
    assert_reads_match_the_ledger(org)
    usage_rollup()
    assert UsageDaily.objects.filter(organization=org, day=date(2026, 10, 21)).get().seconds == 5400
    assert_reads_match_the_ledger(org)

    # Deleting the app closes its open record at the moment of deletion.
    app_delete(actor=None, app=world["apps"]["shop"])
    assert not UsageRecord.objects.filter(ended_at__isnull=True).exists()
    assert_reads_match_the_ledger(org, moments=[*MOMENTS, datetime.now(UTC), datetime.now(UTC) + timedelta(days=40)])
    usage_rollup()
    assert_reads_match_the_ledger(org, moments=[*MOMENTS, datetime.now(UTC), datetime.now(UTC) + timedelta(days=40)])


def daily_rows() -> list[tuple]:
    return sorted(UsageDaily.objects.values_list("organization_id", "day", "app_name", "price_per_hour", "seconds"))


def test_a_pass_again_changes_nothing_and_equals_a_rebuild(world):
    container = world["container"]
    running = container("shop", "web", at(2026, 11, 2, 22), now=at(2026, 11, 3, 6))
    container("shop", "worker", at(2026, 11, 3, 10), at(2026, 11, 5, 11), now=at(2026, 11, 6))
    usage_rollup()
    usage_sync([running.pk], now=at(2026, 11, 12))
    assert usage_rollup() > 0
    rows = daily_rows()
    assert usage_rollup() == 0
    assert daily_rows() == rows
    usage_rollup(rebuild=True)
    assert daily_rows() == rows


@pytest.fixture
def committed_world(transactional_db):
    org = OrganizationFactory(slug="acme")
    app = AppFactory(organization=org, name="shop")
    return org, app


def closed_record(org, app, start: datetime, end: datetime) -> UsageRecord:
    """A November record of the committed world's app, written straight into the ledger."""
    return UsageRecord.objects.create(
        organization=org,
        app=app,
        app_name="shop",
        process_type="web",
        size_name="small",
        price_per_hour=Decimal("0.036"),
        currency="USD",
        started_at=start,
        ended_at=end,
        period=NOVEMBER,
    )


def test_passes_at_once_give_the_rollup_one_pass_gives(committed_world):
    org, app = committed_world
    for n in range(40):
        start = at(2026, 11, 1) + timedelta(hours=7 * n, seconds=n)
        closed_record(org, app, start, start + timedelta(hours=5, microseconds=n))
    barrier, errors = threading.Barrier(4), []

    def roll_up():
        try:
            barrier.wait()
            usage_rollup()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = daily_rows()
    assert len(rows) > 10
    usage_rollup(rebuild=True)
    assert daily_rows() == rows
    assert assert_reads_match_the_ledger(org, periods=(NOVEMBER,))


def test_deleting_an_app_splits_its_open_usage_at_the_period_boundary_first(world):
    # Metering last ran before midnight of the 1st; the app is deleted ten minutes after it.
    container = world["container"]
    container("shop", "web", at(2026, 10, 31, 23), now=at(2026, 10, 31, 23, 30))
    usage_close_for_app(app=world["apps"]["shop"], at=at(2026, 11, 1, 0, 10))
    assert list(UsageRecord.objects.order_by("started_at").values_list("started_at", "ended_at", "period")) == [
        (at(2026, 10, 31, 23), at(2026, 11, 1), OCTOBER),
        (at(2026, 11, 1), at(2026, 11, 1, 0, 10), NOVEMBER),
    ]
    moments = [at(2026, 10, 31, 23, 45), at(2026, 11, 1), at(2026, 11, 1, 0, 5), at(2026, 11, 2)]
    assert_reads_match_the_ledger(world["org"], moments=moments)
    usage_rollup()
    assert sorted(UsageDaily.objects.values_list("seconds", flat=True)) == [600, 3600]
    assert_reads_match_the_ledger(world["org"], moments=moments)


def test_a_pass_skips_rather_than_wait_for_a_writer_in_flight(committed_world, monkeypatch):
    import psycopg

    from berth.billing import rollup

    org, app = committed_world
    monkeypatch.setattr(rollup, "LOCK_TIMEOUT", "200ms")
    record = closed_record(org, app, at(2026, 11, 2, 8), at(2026, 11, 2, 9))
    settings = connection.settings_dict
    # Another worker's metering transaction, not committed yet: its revision must not fall below a mark.
    with psycopg.connect(
        dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"]
    ) as writer:
        writer.execute(
            "UPDATE billing_usagerecord SET revision = nextval('billing_usagerecord_revision_seq') WHERE id = %s",
            [record.pk],
        )
        assert usage_rollup() == 0
        assert not UsageDaily.objects.exists()
    assert usage_rollup() == 1  # committed now: the next pass takes it
    assert UsageDaily.objects.get().seconds == 3600
