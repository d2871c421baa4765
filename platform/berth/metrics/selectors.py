"""Reading metrics: an app's figures over a period, for the API and the dashboard's charts."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from berth.applications.models import App
from berth.core.errors import Invalid

from .models import HOUR, MINUTE, ContainerBucket, RouteBucket
from .services import bucket_start


@dataclass(frozen=True)
class Period:
    """What a chart covers: `span` seconds up to now, in points of `bin` seconds made of buckets of `step`."""

    span: int
    bin: int
    step: int


PERIODS = {
    "hour": Period(span=HOUR, bin=MINUTE, step=MINUTE),
    "day": Period(span=24 * HOUR, bin=5 * MINUTE, step=MINUTE),
    "week": Period(span=7 * 24 * HOUR, bin=HOUR, step=HOUR),
}


def parse_metrics_period(value: str | None) -> str:
    """The `period` a caller names (the hour by default); anything else is refused, naming the field."""
    period = value or "hour"
    if period not in PERIODS:
        raise Invalid(f"period takes {', '.join(PERIODS)}.", field="period")
    return period


def _period(name: str) -> Period:
    period = PERIODS[name]
    # Minute buckets kept less than the span: the coarser buckets answer instead.
    if period.step == MINUTE and period.span > settings.BERTH_METRICS_MINUTE_RETENTION_HOURS * HOUR:
        return Period(span=period.span, bin=max(period.bin, HOUR), step=HOUR)
    return period


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def app_metrics(*, app: App, period: str, now: datetime) -> dict:
    """The app's figures over `period` (PERIODS) up to `now`: each replica slot's CPU, memory and restarts,
    and its requests through the routers, one point per bin that has figures (a bin without is a gap).
    Two statements, whatever the number of slots and points."""
    shape = _period(period)
    end = bucket_start(now, shape.bin) + timedelta(seconds=shape.bin)
    start = end - timedelta(seconds=shape.span)
    params = {"app": app.pk, "step": shape.step, "start": start, "end": end, "bin": shape.bin}
    binned = "to_timestamp(floor(extract(epoch FROM start) / %(bin)s) * %(bin)s)"
    containers = _rows(
        f"""
        SELECT process_type, index, canary, {binned} AS time, sum(samples)::bigint AS samples,
               sum(cpu_millis_sum) AS cpu_sum,
               max(cpu_millis_max) AS cpu_max, max(cpu_limit_millis) AS cpu_limit,
               sum(memory_bytes_sum)::bigint AS memory_sum, max(memory_bytes_max) AS memory_max,
               max(memory_limit_bytes) AS memory_limit, sum(restarts)::bigint AS restarts
        FROM {ContainerBucket._meta.db_table}
        WHERE app_id = %(app)s AND step = %(step)s AND start >= %(start)s AND start < %(end)s
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        """,
        params,
    )
    routes = _rows(
        f"""
        SELECT {binned} AS time, sum(requests)::bigint AS requests,
               sum(status_1xx)::bigint AS status_1xx, sum(status_2xx)::bigint AS status_2xx,
               sum(status_3xx)::bigint AS status_3xx, sum(status_4xx)::bigint AS status_4xx,
               sum(status_5xx)::bigint AS status_5xx, sum(status_other)::bigint AS status_other,
               sum(response_ms_weighted) AS response_weighted, sum(total_ms_weighted) AS total_weighted
        FROM {RouteBucket._meta.db_table}
        WHERE app_id = %(app)s AND step = %(step)s AND start >= %(start)s AND start < %(end)s
        GROUP BY 1 ORDER BY 1
        """,
        params,
    )
    processes: dict[tuple[str, int, bool], dict] = {}
    for row in containers:
        process = processes.setdefault(
            (row["process_type"], row["index"], row["canary"]),
            {
                "name": f"{row['process_type']}.{row['index']}" + (" canary" if row["canary"] else ""),
                "process_type": row["process_type"],
                "index": row["index"],
                "canary": row["canary"],
                "cpu_limit_millis": 0,
                "memory_limit_bytes": 0,
                "restarts": 0,
                "points": [],
            },
        )
        samples = row["samples"]
        # Limits as last read: a slot's size can change with a scale.
        if row["cpu_limit"]:
            process["cpu_limit_millis"] = row["cpu_limit"]
        if row["memory_limit"]:
            process["memory_limit_bytes"] = row["memory_limit"]
        process["restarts"] += row["restarts"]
        process["points"].append(
            {
                "time": row["time"],
                "cpu_millis": round(row["cpu_sum"] / samples, 1) if samples else None,
                "cpu_max_millis": round(row["cpu_max"], 1) if samples else None,
                "memory_bytes": row["memory_sum"] // samples if samples else None,
                "memory_max_bytes": row["memory_max"] if samples else None,
                "restarts": row["restarts"],
            }
        )
    points = []
    totals = dict.fromkeys(("requests", "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx"), 0)
    totals["status_other"] = 0
    for row in routes:
        requests = row["requests"]
        for name in totals:
            totals[name] += row[name]
        points.append(
            {
                "time": row["time"],
                "requests": requests,
                "per_second": round(requests / shape.bin, 3),
                **{name: row[name] for name in totals if name != "requests"},
                "response_ms": round(row["response_weighted"] / requests, 1) if requests else None,
                "total_ms": round(row["total_weighted"] / requests, 1) if requests else None,
            }
        )
    return {
        "period": period,
        "start": start,
        "end": end,
        "bin_seconds": shape.bin,
        "processes": list(processes.values()),
        "requests": {**totals, "points": points},
    }
