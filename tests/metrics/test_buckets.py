"""Readings become figures in minute and hour buckets, passes add up, restarts are counted from the
containers' rows, and old buckets go with their retention (docs/metrics.md)."""

from datetime import UTC, datetime, timedelta

import pytest

from berth.applications.models import Release
from berth.fleet.models import Container
from berth.metrics.models import HOUR, MINUTE, ContainerBucket, Reading, RouteBucket
from berth.metrics.selectors import app_metrics
from berth.metrics.services import (
    ContainerReading,
    RouteReading,
    bucket_start,
    container_readings_record,
    metrics_prune,
    restarts_count,
    route_readings_record,
)
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def ts(text: str) -> datetime:
    """A moment in UTC, written as ISO: ts("2026-12-06 10:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


T0 = ts("2026-12-06 10:00:05")


def container(app, moment, cpu_ns, *, memory=10 * MB, docker_id="c1", index=1, canary=False) -> ContainerReading:
    return ContainerReading(
        app_id=app.pk,
        process_type="web",
        index=index,
        canary=canary,
        docker_id=docker_id,
        read_at=moment,
        cpu_ns=cpu_ns,
        memory_bytes=memory,
        memory_limit_bytes=64 * MB,
        cpu_limit_millis=250,
    )


def route(app, moment, requests, *, ok=None, errors=0, router_id=1, backend="b00001", response_ms=12.0, life="41@1"):
    ok = requests - errors if ok is None else ok
    counters = {
        "requests": requests,
        "status_1xx": 0,
        "status_2xx": ok,
        "status_3xx": 0,
        "status_4xx": 0,
        "status_5xx": errors,
        "status_other": 0,
    }
    return RouteReading(
        router_id=router_id,
        backend=backend,
        app_id=app.pk,
        read_at=moment,
        life=life,
        counters=counters,
        response_ms=response_ms,
        total_ms=response_ms + 1,
    )


def buckets(app, step):
    return list(ContainerBucket.objects.filter(app=app, step=step).order_by("start", "index"))


def test_a_first_reading_sets_the_counter_and_the_second_gives_cpu_from_the_difference():
    app = AppFactory()
    assert container_readings_record(readings=[container(app, T0, 1_000_000_000)]) == 0
    assert ContainerBucket.objects.count() == 0
    # 0.5 s of CPU over 10 s: half of a tenth of a core, 50 thousandths.
    assert container_readings_record(readings=[container(app, T0 + timedelta(seconds=10), 1_500_000_000)]) == 1
    [minute] = buckets(app, MINUTE)
    [hour] = buckets(app, HOUR)
    for bucket in (minute, hour):
        assert bucket.samples == 1
        assert bucket.cpu_millis_sum == pytest.approx(50)
        assert bucket.memory_bytes_sum == 10 * MB
        assert bucket.memory_limit_bytes == 64 * MB
        assert bucket.cpu_limit_millis == 250
    assert minute.start == ts("2026-12-06 10:00")
    assert hour.start == ts("2026-12-06 10:00")


def test_minutes_are_kept_apart_and_the_hour_holds_them_all():
    app = AppFactory()
    cpu = 0
    for second in range(0, 181, 15):  # a reading every 15 s for three minutes, a tenth of a core busy
        container_readings_record(readings=[container(app, T0 + timedelta(seconds=second), cpu, memory=second * MB)])
        cpu += 1_500_000_000
    minutes = buckets(app, MINUTE)
    assert [b.start for b in minutes] == [ts("2026-12-06 10:00"), ts("2026-12-06 10:01"), ts("2026-12-06 10:02"),
                                          ts("2026-12-06 10:03")]  # fmt: skip
    assert [b.samples for b in minutes] == [3, 4, 4, 1]
    [hour] = buckets(app, HOUR)
    assert hour.samples == 12 == sum(b.samples for b in minutes)
    assert hour.cpu_millis_sum / hour.samples == pytest.approx(100)
    assert hour.memory_bytes_max == 180 * MB == max(b.memory_bytes_max for b in minutes)
    assert hour.memory_bytes_sum == sum(b.memory_bytes_sum for b in minutes)


def test_a_reading_older_than_the_last_one_kept_is_dropped():
    """Two passes that overlap: the one that read earlier but writes later adds nothing and keeps the newer counter."""
    app = AppFactory()
    container_readings_record(readings=[container(app, T0, 0)])
    container_readings_record(readings=[container(app, T0 + timedelta(seconds=20), 2_000_000_000)])
    container_readings_record(readings=[container(app, T0 + timedelta(seconds=10), 1_000_000_000)])
    [minute] = buckets(app, MINUTE)
    assert minute.samples == 1
    assert Reading.objects.get(key="container:c1").read_at == T0 + timedelta(seconds=20)


def test_two_containers_of_one_slot_share_its_bucket():
    """During a rollout the old and the new container fill one slot for a moment."""
    app = AppFactory()
    container_readings_record(readings=[container(app, T0, 0), container(app, T0, 0, docker_id="c2")])
    later = T0 + timedelta(seconds=10)
    added = container_readings_record(
        readings=[container(app, later, 1_000_000_000), container(app, later, 3_000_000_000, docker_id="c2")]
    )
    assert added == 2
    [minute] = buckets(app, MINUTE)
    assert minute.samples == 2
    assert minute.cpu_millis_max == pytest.approx(300)
    assert minute.cpu_millis_sum == pytest.approx(400)


def test_a_canarys_replica_is_a_slot_apart_from_the_releases_of_the_same_number():
    app = AppFactory()
    container_readings_record(readings=[container(app, T0, 0), container(app, T0, 0, docker_id="c2", canary=True)])
    later = T0 + timedelta(seconds=10)
    container_readings_record(
        readings=[
            container(app, later, 1_000_000_000),
            container(app, later, 2_000_000_000, docker_id="c2", canary=True),
        ]
    )
    report = app_metrics(app=app, period="hour", now=later)
    shown = {p["name"]: (p["canary"], p["points"][0]["cpu_millis"]) for p in report["processes"]}
    assert shown == {"web.1": (False, 100.0), "web.1 canary": (True, 200.0)}


def test_requests_come_from_the_difference_summed_over_routers():
    app = AppFactory()
    route_readings_record(readings=[route(app, T0, 1000), route(app, T0, 50, router_id=2)])
    assert RouteBucket.objects.count() == 0
    later = T0 + timedelta(seconds=15)
    added = route_readings_record(
        readings=[route(app, later, 1030, errors=5, response_ms=10), route(app, later, 60, router_id=2, response_ms=40)]
    )
    assert added == 2
    [minute] = RouteBucket.objects.filter(step=MINUTE)
    assert minute.requests == 40
    assert minute.status_5xx == 5
    assert minute.status_2xx == 35
    # Mean times weighted by the requests each reading covered: (30 x 10 + 10 x 40) / 40.
    assert minute.response_ms_weighted / minute.requests == pytest.approx(17.5)


def test_a_restarted_router_counts_from_zero_again():
    app = AppFactory()
    route_readings_record(readings=[route(app, T0, 5000)])
    route_readings_record(readings=[route(app, T0 + timedelta(seconds=15), 7, life="42@2")])
    assert RouteBucket.objects.get(step=MINUTE).requests == 7
    # Restarted and busier since than before: told by its life, not by the counters going down.
    route_readings_record(readings=[route(app, T0 + timedelta(seconds=30), 9000, life="43@3")])
    assert RouteBucket.objects.get(step=MINUTE).requests == 9007
    route_readings_record(readings=[route(app, T0 + timedelta(seconds=45), 9010, life="43@3")])
    assert RouteBucket.objects.get(step=MINUTE).requests == 9017


def test_a_backend_slot_taken_by_another_app_starts_from_its_counts_then():
    """A deleted app's backend is taken by a new app: the old app's requests are never the new one's."""
    old, new = AppFactory(), AppFactory()
    route_readings_record(readings=[route(old, T0, 900)])
    route_readings_record(readings=[route(new, T0 + timedelta(seconds=15), 950)])
    route_readings_record(readings=[route(new, T0 + timedelta(seconds=30), 970)])
    assert not RouteBucket.objects.filter(app=old).exists()
    assert RouteBucket.objects.get(app=new, step=MINUTE).requests == 20


def test_restarts_are_the_slots_containers_that_ended_on_their_own_counted_once():
    app = AppFactory()
    ended = ts("2026-12-06 10:07:30")
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    made = {"app": app, "release": release, "host": HostFactory(), "size": SizeFactory()}
    ContainerFactory(**made, index=1, state=Container.State.EXITED, exit_code=1, finished_at=ended)
    ContainerFactory(**made, index=1, state=Container.State.LOST, finished_at=ended + timedelta(seconds=10))
    ContainerFactory(**made, index=2, state=Container.State.REMOVED, finished_at=ended)  # Berth stopped it
    ContainerFactory(**made, process_type="run", index=7, state=Container.State.EXITED, finished_at=ended)
    ContainerFactory(**made, index=3, state=Container.State.EXITED, finished_at=ended - timedelta(hours=2))
    for _ in range(2):  # passes overlap: counted again, never added twice
        restarts_count(since=ended - timedelta(minutes=5))
    rows = ContainerBucket.objects.filter(app=app).values_list("process_type", "index", "step", "start", "restarts")
    assert sorted(rows) == [
        ("web", 1, MINUTE, ts("2026-12-06 10:07"), 2),
        ("web", 1, HOUR, ts("2026-12-06 10:00"), 2),
    ]
    report = app_metrics(app=app, period="hour", now=ended + timedelta(minutes=1))
    [process] = report["processes"]
    assert process["name"] == "web.1"
    assert process["restarts"] == 2
    assert process["points"][0]["cpu_millis"] is None  # no reading yet: a gap, not a zero


def fill(app, start, minutes):
    """A reading every 15 s for `minutes` minutes, a quarter of a core busy."""
    moment, cpu = start, 0
    for _ in range(minutes * 4 + 1):
        container_readings_record(readings=[container(app, moment, cpu)])
        route_readings_record(readings=[route(app, moment, cpu // 10_000_000)])
        moment += timedelta(seconds=15)
        cpu += 3_750_000_000


def test_the_day_is_shown_in_five_minute_points_and_the_hour_in_minutes():
    app = AppFactory()
    fill(app, T0, 12)
    now = T0 + timedelta(minutes=13)
    hour = app_metrics(app=app, period="hour", now=now)
    day = app_metrics(app=app, period="day", now=now)
    assert hour["bin_seconds"] == 60
    assert len(hour["processes"][0]["points"]) == 13
    assert day["bin_seconds"] == 300
    [process] = day["processes"]
    assert [p["time"] for p in process["points"]] == [ts("2026-12-06 10:00"), ts("2026-12-06 10:05"),
                                                       ts("2026-12-06 10:10")]  # fmt: skip
    assert all(p["cpu_millis"] == pytest.approx(250) for p in process["points"])
    # 375 requests per reading: 375 / 15 s = 25 per second.
    assert {p["per_second"] for p in hour["requests"]["points"][1:-1]} == {25.0}
    assert day["requests"]["requests"] == hour["requests"]["requests"] == 48 * 375


def test_minute_buckets_go_after_their_retention_and_the_hours_stay(settings):
    settings.BERTH_METRICS_MINUTE_RETENTION_HOURS = 2
    settings.BERTH_METRICS_HOUR_RETENTION_DAYS = 1
    app = AppFactory()
    fill(app, T0, 3)
    fill(app, T0 + timedelta(hours=5), 3)
    now = T0 + timedelta(hours=6)
    deleted = metrics_prune(now=now)
    assert deleted["containers"] == 4  # the first span's minutes
    assert min(b.start for b in buckets(app, MINUTE)) == ts("2026-12-06 15:00")
    assert [b.start for b in buckets(app, HOUR)] == [ts("2026-12-06 10:00"), ts("2026-12-06 15:00")]
    assert not RouteBucket.objects.filter(step=MINUTE, start__lt=ts("2026-12-06 15:00")).exists()
    assert RouteBucket.objects.filter(step=HOUR).count() == 2
    # Minute buckets kept less than a day: the day's chart is drawn from the hours.
    day = app_metrics(app=app, period="day", now=now)
    assert day["bin_seconds"] == HOUR
    assert [p["time"] for p in day["processes"][0]["points"]] == [ts("2026-12-06 10:00"), ts("2026-12-06 15:00")]
    # A day and more later the hours go too, and the readings of sources not read since.
    deleted = metrics_prune(now=now + timedelta(days=2))
    assert not ContainerBucket.objects.exists()
    assert not RouteBucket.objects.exists()
    assert deleted["readings"] == 2
    assert not Reading.objects.exists()


def test_bucket_start_is_aligned_on_whole_minutes_and_hours():
    moment = ts("2026-12-06 10:59:59.999")
    assert bucket_start(moment, MINUTE) == ts("2026-12-06 10:59")
    assert bucket_start(moment, HOUR) == ts("2026-12-06 10:00")
    assert bucket_start(moment, 300) == ts("2026-12-06 10:55")
