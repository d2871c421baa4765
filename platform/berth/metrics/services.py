"""Writing metrics: readings the worker took become figures in minute and hour buckets, and old buckets go.

Engines and routers give cumulative counters (a container's CPU time, a backend's requests): a figure
is the difference between two readings of the same source, so each reading is kept (`Reading`) until
the next. Every figure is added to its minute bucket and its hour bucket at once: the downsampling is
done as the figures arrive, and pruning is a delete by age (docs/metrics.md).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from berth.applications.specs import RUN_PROCESS_TYPE
from berth.fleet.models import Container

from .models import HOUR, MINUTE, STEPS, ContainerBucket, Reading, RouteBucket

STATUS_CLASSES = ("status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "status_other")
ROUTE_COUNTERS = ("requests", *STATUS_CLASSES)
# Counters not read again for this long belong to a container or backend that is gone.
READING_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ContainerReading:
    """One read of a running container's counters (Engine.stats), with the slot it fills."""

    app_id: int
    process_type: str
    index: int
    canary: bool
    docker_id: str
    read_at: datetime
    cpu_ns: int
    memory_bytes: int
    memory_limit_bytes: int
    cpu_limit_millis: int


@dataclass(frozen=True)
class RouteReading:
    """One read of one router's counters for one app's backend (`show stat`). `counters` holds
    ROUTE_COUNTERS, cumulative since the router started (`life` says which start: its process and
    start time); the times are HAProxy's running averages."""

    router_id: int
    backend: str
    app_id: int
    read_at: datetime
    life: str
    counters: dict[str, int]
    response_ms: float
    total_ms: float


def bucket_start(moment: datetime, step: int) -> datetime:
    """The start of the bucket of `step` seconds that holds `moment` (buckets are aligned on the epoch)."""
    seconds = int(moment.timestamp())
    return moment - timedelta(seconds=seconds % step, microseconds=moment.microsecond)


def _previous(keys: list[str]) -> dict[str, Reading]:
    """The last readings of these sources, locked, so two passes cannot both take a difference from one."""
    return {reading.key: reading for reading in Reading.objects.select_for_update().filter(key__in=keys)}


def _keep(readings: dict[str, tuple[datetime, dict]]) -> None:
    Reading.objects.bulk_create(
        [Reading(key=key, read_at=at, values=values) for key, (at, values) in readings.items()],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["read_at", "values"],
    )


def container_readings_record(*, readings: list[ContainerReading]) -> int:
    """Turn container readings into CPU and memory figures in their slots' buckets; returns how many
    figures were added. A container's first reading only sets its counter: CPU needs two."""
    keys = [f"container:{reading.docker_id}" for reading in readings]
    # (app, process type, index, canary, step, start)
    #   -> [samples, cpu sum, cpu max, cpu limit, memory sum, memory max, memory limit]
    buckets: dict[tuple, list] = {}
    added = 0
    with transaction.atomic():
        previous = _previous(keys)
        kept: dict[str, tuple[datetime, dict]] = {}
        for key, reading in zip(keys, readings, strict=True):
            before = previous.get(key)
            if before is not None and before.read_at >= reading.read_at:
                continue  # a pass that read earlier and wrote later: its figure is already out of date
            kept[key] = (reading.read_at, {"cpu_ns": reading.cpu_ns})
            if before is None:
                continue
            elapsed_ns = (reading.read_at - before.read_at).total_seconds() * 1e9
            used_ns = reading.cpu_ns - int(before.values["cpu_ns"])
            if used_ns < 0:
                continue  # not the counter read before (a container id reused): starts again from here
            cpu = used_ns / elapsed_ns * 1000
            added += 1
            for step in STEPS:
                slot = (
                    reading.app_id,
                    reading.process_type,
                    reading.index,
                    reading.canary,
                    step,
                    bucket_start(reading.read_at, step),
                )
                figures = buckets.setdefault(slot, [0, 0.0, 0.0, 0, 0, 0, 0])
                figures[0] += 1
                figures[1] += cpu
                figures[2] = max(figures[2], cpu)
                figures[3] = reading.cpu_limit_millis
                figures[4] += reading.memory_bytes
                figures[5] = max(figures[5], reading.memory_bytes)
                figures[6] = reading.memory_limit_bytes
        _keep(kept)
        if buckets:
            _add(
                ContainerBucket,
                ["app_id", "process_type", "index", "canary", "step", "start"],
                {
                    "samples": "+",
                    "cpu_millis_sum": "+",
                    "cpu_millis_max": "max",
                    "cpu_limit_millis": "=",
                    "memory_bytes_sum": "+",
                    "memory_bytes_max": "max",
                    "memory_limit_bytes": "=",
                },
                [(*slot, *figures) for slot, figures in buckets.items()],
            )
    return added


def route_readings_record(*, readings: list[RouteReading]) -> int:
    """Turn router readings into each app's request figures, summed over routers; returns how many
    readings became figures. A backend's first reading for an app only sets its counters: a backend slot
    that served another app before starts from the counts it has."""
    keys = [f"route:{r.router_id}:{r.backend}:{r.app_id}" for r in readings]
    buckets: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * (len(ROUTE_COUNTERS) + 2))
    added = 0
    with transaction.atomic():
        previous = _previous(keys)
        kept: dict[str, tuple[datetime, dict]] = {}
        for key, reading in zip(keys, readings, strict=True):
            before = previous.get(key)
            if before is not None and before.read_at >= reading.read_at:
                continue
            kept[key] = (reading.read_at, {**reading.counters, "life": reading.life})
            if before is None:
                continue
            counted = {name: reading.counters[name] - int(before.values.get(name, 0)) for name in ROUTE_COUNTERS}
            if before.values.get("life") != reading.life or any(value < 0 for value in counted.values()):
                # The router restarted: its counters began again from zero, and all it counted is new.
                counted = {name: reading.counters[name] for name in ROUTE_COUNTERS}
            added += 1
            for step in STEPS:
                figures = buckets[(reading.app_id, step, bucket_start(reading.read_at, step))]
                for position, name in enumerate(ROUTE_COUNTERS):
                    figures[position] += counted[name]
                figures[-2] += reading.response_ms * counted["requests"]
                figures[-1] += reading.total_ms * counted["requests"]
        _keep(kept)
        if buckets:
            columns = dict.fromkeys((*ROUTE_COUNTERS, "response_ms_weighted", "total_ms_weighted"), "+")
            rows = [(*slot, *(int(v) for v in figures[:-2]), *figures[-2:]) for slot, figures in buckets.items()]
            _add(RouteBucket, ["app_id", "step", "start"], columns, rows)
    return added


def _add(
    model: type[ContainerBucket] | type[RouteBucket], keys: list[str], columns: dict[str, str], rows: list
) -> None:
    """Insert `rows` (key columns, then `columns`) or add them to the buckets that exist: "+" adds,
    "max" keeps the larger, "=" takes the new value. One statement, so concurrent passes add up."""
    table = model._meta.db_table
    names = [*keys, *columns]
    merge = {
        "+": "{t}.{c} + EXCLUDED.{c}",
        "max": "GREATEST({t}.{c}, EXCLUDED.{c})",
        "=": "EXCLUDED.{c}",
    }
    updates = ", ".join(f"{c} = " + merge[how].format(t=table, c=c) for c, how in columns.items())
    placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def restarts_count(*, since: datetime) -> None:
    """Set the restarts of the buckets from `since` on: the slot's containers that exited or were lost
    with their host in each. Counted again from the containers' rows on every pass, so a crash the
    reconciler records late still lands in the bucket of its finish time, and counting twice is harmless."""
    table = ContainerBucket._meta.db_table
    for step in STEPS:
        start = bucket_start(since, step)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {table} (app_id, process_type, index, canary, step, start, restarts)
                SELECT app_id, process_type, index, canary, %(step)s,
                       to_timestamp(floor(extract(epoch FROM finished_at) / %(step)s) * %(step)s), count(*)
                FROM fleet_container
                WHERE state = ANY(%(ended)s) AND finished_at >= %(start)s AND process_type <> %(run)s
                GROUP BY 1, 2, 3, 4, 6
                ON CONFLICT (app_id, step, start, process_type, index, canary)
                DO UPDATE SET restarts = EXCLUDED.restarts
                """,
                {
                    "step": step,
                    "start": start,
                    "ended": [Container.State.EXITED, Container.State.LOST],
                    "run": RUN_PROCESS_TYPE,  # runs end on their own by design, which is no restart
                },
            )


def metrics_prune(*, now: datetime) -> dict[str, int]:
    """Delete the buckets past their retention (BERTH_METRICS_MINUTE_RETENTION_HOURS for minutes,
    BERTH_METRICS_HOUR_RETENTION_DAYS for hours) and the readings of sources gone for a day."""
    ages = {
        MINUTE: now - timedelta(hours=settings.BERTH_METRICS_MINUTE_RETENTION_HOURS),
        HOUR: now - timedelta(days=settings.BERTH_METRICS_HOUR_RETENTION_DAYS),
    }
    deleted = {"containers": 0, "routes": 0}
    for step, before in ages.items():
        deleted["containers"] += ContainerBucket.objects.filter(step=step, start__lt=before).delete()[0]
        deleted["routes"] += RouteBucket.objects.filter(step=step, start__lt=before).delete()[0]
    deleted["readings"] = Reading.objects.filter(read_at__lt=now - READING_RETENTION).delete()[0]
    return deleted
