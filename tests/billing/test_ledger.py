"""The ledger's guarantees in PostgreSQL: no second billed twice, none lost, writes idempotent."""

import threading
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from django.db import IntegrityError, connection, transaction

from berth.billing.metering import intervals, usage_sync
from berth.billing.models import UsageRecord
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import at


@pytest.fixture
def running(transactional_db):
    from berth.applications.models import Release

    app = AppFactory(name="shop")
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    return ContainerFactory(
        host=HostFactory(),
        app=app,
        release=release,
        size=SizeFactory(),
        started_at=at(2026, 11, 2, 8),
        state=Container.State.RUNNING,
    )


def record(container, start, end):
    return UsageRecord(
        container=container,
        organization_id=container.organization_id,
        app=container.app,
        app_name="shop",
        process_type="web",
        size_name="small",
        price_per_hour=Decimal(0),
        currency="USD",
        started_at=start,
        ended_at=end,
        period=start.date().replace(day=1),
    )


def test_an_overlapping_interval_for_one_container_is_impossible(running):
    record(running, at(2026, 11, 2, 8), at(2026, 11, 2, 10)).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        record(running, at(2026, 11, 2, 9), at(2026, 11, 2, 11)).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        record(running, at(2026, 11, 2, 9, 59, 59), None).save()  # open, overlapping
    record(running, at(2026, 11, 2, 10), None).save()  # adjacent is fine: [8, 10) then [10, …)


def test_the_same_interval_twice_is_impossible(running):
    record(running, at(2026, 11, 2, 8), at(2026, 11, 2, 9)).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        record(running, at(2026, 11, 2, 8), at(2026, 11, 2, 9)).save()


def test_syncing_twice_or_from_two_workers_at_once_writes_the_same_ledger(running):
    now = at(2026, 11, 2, 12)
    results, barrier = [], threading.Barrier(4)

    def sync():
        try:
            barrier.wait()
            results.append(usage_sync([running.pk], now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert list(UsageRecord.objects.values_list("started_at", "ended_at")) == [(at(2026, 11, 2, 8), None)]
    Container.objects.filter(pk=running.pk).update(state=Container.State.REMOVED, finished_at=at(2026, 11, 2, 13))
    assert usage_sync([running.pk], now=now) == 1
    assert usage_sync([running.pk], now=now) == 0
    assert list(UsageRecord.objects.values_list("started_at", "ended_at")) == [
        (at(2026, 11, 2, 8), at(2026, 11, 2, 13))
    ]


def test_a_lost_container_is_billed_to_the_last_time_it_was_seen(running):
    seen = at(2026, 11, 2, 9, 30, 15)
    usage_sync([running.pk], now=at(2026, 11, 2, 9))
    Container.objects.filter(pk=running.pk).update(state=Container.State.LOST, finished_at=seen, last_seen_at=seen)
    usage_sync([running.pk], now=at(2026, 11, 2, 11))
    assert list(UsageRecord.objects.values_list("ended_at", flat=True)) == [seen]


def test_intervals_cover_the_whole_life_without_gaps():
    prices = [(at(2026, 1, 1), Decimal("1"), "USD"), (at(2026, 11, 15, 6), Decimal("2"), "USD")]
    start, end = at(2026, 10, 30, 23, 59, 59), at(2026, 12, 2, 0, 0, 1)
    spans = intervals(start, end, prices)
    assert spans[0].start == start and spans[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(spans))
    assert [s.start for s in spans[1:]] == [at(2026, 11, 1), at(2026, 11, 15, 6), at(2026, 12, 1)]
    assert [s.price_per_hour for s in spans] == [1, 1, 2, 2]
    assert sum((s.end - s.start for s in spans), timedelta()) == end - start
