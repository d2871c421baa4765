"""Reads of usage and cost, aggregated in SQL (never a Python loop over records)."""

from datetime import date, datetime
from decimal import Decimal

from django.db import connection, transaction

from .money import period_end, period_start, round_amount

GROUPS = {"app": "r.app_name", "process_type": "r.process_type", "size": "r.size_name", "day": "d.day"}
DEFAULT_GROUPS = ("app", "process_type", "size")


def usage_for_period(*, organization_id: int, period: date, group_by: tuple[str, ...], now: datetime) -> dict:
    """Seconds and cost per group of an organization's usage in a period; open intervals count to now.

    Costs are rounded once per row, half up to the cent; an invoice rounds per invoice line, so a
    total of rows grouped otherwise can differ from it by a cent or so.
    """
    start, end = period_start(period), period_end(period)
    cutoff = min(now, end)
    columns = [GROUPS[name] for name in group_by]
    if "day" in group_by:
        # A record counts towards every day it overlaps, for the part that falls in that day.
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
        source = "FROM billing_usagerecord r"
        lower = "r.started_at"
        upper = "LEAST(COALESCE(r.ended_at, %(cutoff)s), %(cutoff)s)"
    seconds = f"GREATEST(EXTRACT(EPOCH FROM ({upper} - {lower})), 0)"
    select = ", ".join([*columns, f"SUM({seconds})", f"SUM({seconds} * r.price_per_hour) / 3600", "MIN(r.currency)"])
    group = f"GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
    sql = (
        f"SELECT {select} {source} WHERE r.organization_id = %(org)s AND r.started_at < %(end)s "
        f"AND r.period = %(period)s AND r.started_at < %(cutoff)s {group}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # PostgreSQL guesses 1,000 rows per generate_series and JIT-compiles the plan, which costs more
        # than running it (measured in benchmarks/results/usage_api.md).
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, {"org": organization_id, "period": period, "end": end, "cutoff": cutoff, "start": start})
        rows = cursor.fetchall()
    result_rows = []
    for row in rows:
        keys = dict(zip(group_by, row[: len(columns)], strict=True))
        if "day" in keys:
            keys["day"] = keys["day"].date().isoformat()
        result_rows.append(
            {**keys, "seconds": int(row[len(columns)] or 0), "cost": round_amount(Decimal(row[len(columns) + 1] or 0))}
        )
    currency = next((row[-1] for row in rows if row[-1]), "USD")
    return {
        "period": period.strftime("%Y-%m"),
        "currency": currency,
        "group_by": list(group_by),
        "rows": result_rows,
        "total_seconds": sum(r["seconds"] for r in result_rows),
        "total_cost": sum((r["cost"] for r in result_rows), Decimal("0.00")),
    }
