"""The meter task's pass (usage_sync_all) syncs only the containers whose ledger needs a change."""

from decimal import Decimal

import pytest

from berth.billing.metering import containers_to_sync, usage_sync, usage_sync_all
from berth.billing.models import SizePrice, UsageRecord
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import at


@pytest.fixture
def make(db):
    from berth.applications.models import Release

    app = AppFactory(name="shop")
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    host, size = HostFactory(), SizeFactory(name="small")
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.036"), effective_from=at(2026, 1, 1))

    def container(start, *, state=Container.State.RUNNING, finished=None, synced_at=None, size=size):
        row = ContainerFactory(
            host=host, app=app, release=release, size=size, started_at=start, state=state, finished_at=finished
        )
        if synced_at:
            usage_sync([row.pk], now=synced_at)
        return row

    return container


def ledger() -> list[tuple]:
    return list(UsageRecord.objects.order_by("pk").values_list("pk", "ended_at", "revision"))


def test_a_pass_over_unchanged_running_containers_writes_nothing_in_one_query(make, django_assert_max_num_queries):
    for n in range(60):
        make(at(2026, 11, 2, n % 24), synced_at=at(2026, 11, 19))
    before = ledger()
    assert len(before) == 60
    with django_assert_max_num_queries(1):
        assert usage_sync_all(now=at(2026, 11, 20)) == 0
    assert ledger() == before


def test_the_pass_picks_exactly_the_containers_whose_ledger_lags(make):
    now = at(2026, 11, 26)
    repriced = SizeFactory(name="repriced")
    SizePrice.objects.create(size=repriced, price_per_hour=Decimal("0.036"), effective_from=at(2026, 1, 1))
    SizePrice.objects.create(size=repriced, price_per_hour=Decimal("0.05"), effective_from=at(2026, 11, 25))
    ended = Container.State.REMOVED
    lagging = {
        make(at(2026, 11, 20)),  # running, never metered
        make(at(2026, 11, 20), size=repriced, synced_at=at(2026, 11, 24)),  # price changed since
        make(at(2026, 10, 30), synced_at=at(2026, 10, 31)),  # November began since
        ended_open := make(at(2026, 11, 20), synced_at=at(2026, 11, 21)),  # ends below, its record still open
        make(at(2026, 11, 20), state=Container.State.EXITED, finished=at(2026, 11, 20, 1)),  # ended, no record
    }
    in_step = [
        make(at(2026, 11, 20), synced_at=at(2026, 11, 21)),  # running, open record, nothing to split
        make(at(2026, 11, 20), synced_at=at(2026, 11, 21), state=Container.State.STOPPING),
        make(at(2026, 11, 20), state=ended, finished=at(2026, 11, 21), synced_at=at(2026, 11, 22)),  # all closed
        make(None, state=Container.State.CREATED),  # not started: nothing to bill
    ]
    Container.objects.filter(pk=ended_open.pk).update(state=ended, finished_at=at(2026, 11, 22))
    assert len(in_step) == 4
    assert set(containers_to_sync(now=now)) == {c.pk for c in lagging}
    assert usage_sync_all(now=now) > 0
    assert list(containers_to_sync(now=now)) == []
