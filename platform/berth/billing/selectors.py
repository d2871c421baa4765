"""Reads of usage and cost, aggregated in SQL (never a Python loop over records)."""

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.db import connection, transaction
from django.db.models import Prefetch, QuerySet

from .invoicing import draft_live
from .models import Invoice
from .money import period_end, period_of, period_start, round_amount, round_seconds
from .rollup import ROLLED_UP, ROLLUP_LOCK

_ZERO = Decimal(0)
GROUPS = {"app": "app_name", "process_type": "process_type", "size": "size_name", "day": "day"}
DEFAULT_GROUPS = ("app", "process_type", "size")

# The ledger's part of a report: records the roll-up does not hold (open, above the mark, empty), whole,
# and rolled-up records that reach past midnight of the cutoff's day, from that midnight on (the roll-up
# is read for the days before it only). `counted_from` is where each one starts counting.
_LIVE = f"""
    SELECT r.app_name, r.process_type, r.size_name, r.price_per_hour, r.currency, r.started_at, r.ended_at,
           CASE WHEN {ROLLED_UP.format(mark="%(mark)s")} THEN GREATEST(r.started_at, %(midnight)s) ELSE r.started_at END
               AS counted_from
    FROM billing_usagerecord r
    WHERE r.organization_id = %(org)s AND r.period = %(period)s AND r.started_at < %(cutoff)s
      AND (r.ended_at IS NULL OR r.ended_at > %(midnight)s OR r.revision > %(mark)s OR r.ended_at = r.started_at)
"""
# Its seconds, split at midnight UTC when grouping by day: a record counts towards every day it overlaps,
# for the part in that day and before the cutoff (a day past the cutoff shows with 0 seconds, as it
# always has). The roll-up splits with the same expressions (rollup.py), so sums agree to the microsecond.
_LIVE_BY_DAY = """
    SELECT l.app_name, l.process_type, l.size_name, d.day, l.price_per_hour, l.currency,
           GREATEST(EXTRACT(EPOCH FROM (
               LEAST(COALESCE(l.ended_at, %(cutoff)s), (d.day + interval '1 day') AT TIME ZONE 'UTC', %(cutoff)s)
               - GREATEST(l.started_at, d.day AT TIME ZONE 'UTC'))), 0) AS seconds
    FROM live l CROSS JOIN LATERAL generate_series(
        date_trunc('day', l.counted_from AT TIME ZONE 'UTC'),
        date_trunc('day', (COALESCE(l.ended_at, %(cutoff)s) - interval '1 microsecond') AT TIME ZONE 'UTC'),
        interval '1 day') AS d(day)
"""
_LIVE_WHOLE = """
    SELECT l.app_name, l.process_type, l.size_name, NULL::timestamp AS day, l.price_per_hour, l.currency,
           GREATEST(EXTRACT(EPOCH FROM (LEAST(COALESCE(l.ended_at, %(cutoff)s), %(cutoff)s) - l.counted_from)), 0)
    FROM live l
"""
_ROLLED = """
    SELECT u.app_name, u.process_type, u.size_name, u.day::timestamp, u.price_per_hour, u.currency, u.seconds
    FROM billing_usagedaily u
    WHERE u.organization_id = %(org)s AND u.day >= %(first_day)s AND u.day < %(cutoff_day)s
"""


def usage_for_period(*, organization_id: int, period: date, group_by: tuple[str, ...], now: datetime) -> dict:
    """Seconds and cost per group of an organization's usage in a period; open intervals count to now.

    Costs are rounded once per row, half up to the cent; an invoice rounds per invoice line, so a
    total of rows grouped otherwise can differ from it by a cent or so. Seconds are rounded once per
    row, half up to the millisecond (money.round_seconds); each cost comes from the exact seconds.
    Closed usage of the days before the cutoff's comes from the daily roll-up (rollup.py), the rest
    from the ledger; both are exact (seconds to the microsecond), so the sum is what summing the
    records would give.
    """
    columns = [GROUPS[name] for name in group_by]
    select = ", ".join([*columns, "SUM(seconds)", "SUM(seconds * price_per_hour) / 3600", "MIN(currency)"])
    group = f"GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
    sql = f"{_parts(by_day='day' in group_by)} SELECT {select} FROM parts {group}"
    rows = _read_usage(sql, organization_id=organization_id, period=period, now=now)
    # One pass, plain: the usage page reads this report for an organization's every app and day. The sums
    # are numeric, which psycopg reads as Decimal.
    width, by_day, result_rows = len(columns), "day" in group_by, []
    for row in rows:
        entry = dict(zip(group_by, row[:width], strict=True))
        if by_day:
            entry["day"] = entry["day"].date().isoformat()
        entry["seconds"] = round_seconds(row[width] or _ZERO)
        entry["cost"] = round_amount(row[width + 1] or _ZERO)
        result_rows.append(entry)
    currency = next((row[-1] for row in rows if row[-1]), "USD")
    return {
        "period": period.strftime("%Y-%m"),
        "currency": currency,
        "group_by": list(group_by),
        "rows": result_rows,
        # Sums of the rows as shown, as the total cost is.
        "total_seconds": sum((r["seconds"] for r in result_rows), Decimal("0.000")),
        "total_cost": sum((r["cost"] for r in result_rows), Decimal("0.00")),
    }


# The report by app, as usage_for_period(group_by=("app",)) has it, kept for the apps asked about, and the
# total: the sum of every app's cost, each rounded once. PostgreSQL rounds as money.round_amount does
# (ROUND on numeric is half away from zero, and costs are never negative: money.py).
_APP_COSTS = """
    , by_app AS MATERIALIZED (
        SELECT app_name, SUM(seconds * price_per_hour) / 3600 AS cost, MIN(currency) AS currency
          FROM parts GROUP BY app_name
    )
    SELECT app_name, ROUND(cost, 2), currency FROM by_app WHERE app_name = ANY(%(apps)s)
    UNION ALL
    SELECT NULL, COALESCE(SUM(ROUND(cost, 2)), 0.00),
           (SELECT currency FROM by_app WHERE currency IS NOT NULL ORDER BY app_name LIMIT 1)
      FROM by_app
"""


def app_costs(*, organization_id: int, period: date, apps: Collection[str], now: datetime) -> dict:
    """The cost so far in a period of these apps (by name) and of all the organization's apps together,
    exactly as usage_for_period(group_by=("app",)) has them: {"currency", "costs": {app: cost}, "total_cost"}.
    An app with no usage has no entry. For a page that shows a few apps of many and the total: the report
    of every app (an organization's 1,000) is summed in SQL and not read row by row."""
    sql = f"{_parts(by_day=False)}{_APP_COSTS}"
    rows = _read_usage(sql, organization_id=organization_id, period=period, now=now, apps=list(apps))
    *shown, (_, total, currency) = rows
    return {
        "period": period.strftime("%Y-%m"),
        "currency": currency or "USD",
        "costs": {app: cost for app, cost, _ in shown},
        "total_cost": total,
    }


def _parts(*, by_day: bool) -> str:
    """The period's usage as `parts` (app_name, process_type, size_name, day, price_per_hour, currency,
    seconds): closed usage of the days before the cutoff's from the roll-up, the rest from the ledger."""
    live = _LIVE_BY_DAY if by_day else _LIVE_WHOLE
    return (
        f"WITH live AS ({_LIVE}), parts (app_name, process_type, size_name, day, price_per_hour, currency, seconds) "
        f"AS ({_ROLLED} UNION ALL {live})"
    )


def _read_usage(sql: str, *, organization_id: int, period: date, now: datetime, **more: Any) -> list[tuple]:
    """Run a statement over `parts` for the organization's period, open intervals counting to `now`."""
    start, end = period_start(period), period_end(period)
    cutoff = min(now, end)
    midnight = datetime.combine(cutoff.astimezone(UTC).date(), time(), tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        # No roll-up pass can commit between reading its mark (in a later statement, so a snapshot taken
        # after the lock) and its rows. PostgreSQL guesses 1,000 rows per generate_series, so the plan
        # looks big enough to JIT-compile and to run in parallel; both cost more than the few thousand
        # rows it reads (benchmarks/results/usage_api.md).
        cursor.execute(
            "SELECT pg_advisory_xact_lock_shared(%s), set_config('jit', 'off', true), "
            "set_config('max_parallel_workers_per_gather', '0', true)",
            [ROLLUP_LOCK],
        )
        cursor.execute("SELECT COALESCE(MAX(revision), 0) FROM billing_usagerollupmark")
        mark = cursor.fetchone()[0]
        params = {"org": organization_id, "period": period, "cutoff": cutoff, "midnight": midnight, "mark": mark}
        cursor.execute(sql, {**params, "first_day": start.date(), "cutoff_day": midnight.date(), **more})
        return cursor.fetchall()


class _InvoicesNewestFirst(Sequence):
    """A live draft (or nothing) followed by stored invoices, which a paginator slices and counts with one
    query each, as it would the queryset."""

    def __init__(self, draft: Invoice | None, stored: QuerySet[Invoice]) -> None:
        self.head = [draft] if draft is not None else []
        self.stored = stored

    @cached_property
    def _length(self) -> int:
        return len(self.head) + self.stored.count()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        start, stop, _ = index.indices(len(self))
        head = self.head[start:stop]
        rest = self.stored[max(start - len(self.head), 0) : max(stop - len(self.head), 0)]
        return [*head, *rest]


def invoices_of(rows: QuerySet[Invoice], *, organization_id: int, now: datetime) -> Sequence[Invoice]:
    """An organization's invoices, newest first, for the API: `rows` are the stored ones the actor may read
    (for_actor). The current month's draft is read live from the ledger (invoicing.draft_live), in place of
    the stored one, so it exists from the first usage on and counts to now."""
    current = period_of(now)
    return _InvoicesNewestFirst(
        draft_live(organization_id=organization_id, now=now), rows.exclude(period__gte=current).order_by("-period")
    )


def invoice_of(rows: QuerySet[Invoice], *, organization_id: int, period: date, now: datetime) -> Invoice | None:
    """One invoice with its lines (`line_list`); the current month's draft live, as in invoices_of."""
    if period == period_of(now):
        return draft_live(organization_id=organization_id, now=now)
    return rows.filter(period=period).prefetch_related(Prefetch("lines", to_attr="line_list")).first()
