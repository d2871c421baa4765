"""Invoices and usage through the API, as a billing member reads them: seconds to the millisecond, and
the current month's draft from the first usage on, without waiting for the invoices task (issue 9)."""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from berth.applications.models import Release
from berth.billing.invoicing import invoices_run
from berth.billing.metering import usage_sync
from berth.billing.models import Invoice, SizePrice
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import at


class Clock:
    def __init__(self, now: datetime):
        self.now = now


@pytest.fixture
def clock(monkeypatch):
    """The API's idea of now, which a test moves."""
    clock = Clock(at(2026, 11, 4, 6))
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


@pytest.fixture
def shop(organization, clock):
    app = AppFactory(organization=organization, name="shop")
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    size = SizeFactory(name="large")
    # 36 per hour is a cent every second: amounts show what the seconds were.
    SizePrice.objects.create(size=size, price_per_hour=Decimal("36"), effective_from=at(2026, 1, 1))
    return {"app": app, "release": release, "size": size, "host": HostFactory()}


def run(shop, start, end=None, *, now, process_type="web") -> Container:
    """A container the worker observed from `start` to `end` (still running without one), metered at `now`
    as the worker meters it when it is first healthy and when it stops."""
    container = ContainerFactory(
        host=shop["host"],
        app=shop["app"],
        release=shop["release"],
        size=shop["size"],
        process_type=process_type,
        started_at=start,
        finished_at=end,
        state=Container.State.EXITED if end else Container.State.RUNNING,
    )
    usage_sync([container.pk], now=now)
    return container


@pytest.mark.django_db
def test_a_container_that_ran_96_95_seconds_shows_96_95_seconds_everywhere(shop, owner_client, clock):
    start = at(2026, 11, 3, 10)
    run(shop, start, start + timedelta(seconds=96.95), now=clock.now)
    usage = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11").json()
    assert [(r["seconds"], r["cost"]) for r in usage["rows"]] == [("96.950", "0.97")]  # 96.95 cents, half up
    assert usage["total_seconds"] == "96.950"
    response = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11&group_by=app&format=csv")
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["app", "seconds", "cost", "currency"],
        ["shop", "96.950", "0.97", "USD"],
    ]
    draft = owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").json()
    assert [(line["seconds"], line["amount"]) for line in draft["lines"]] == [("96.950", "0.97")]
    # The invoice the month closes with says the same.
    clock.now = at(2026, 12, 1, 2)
    invoices_run(now=clock.now)
    final = owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").json()
    assert final["state"] == "finalized"
    assert [(line["seconds"], line["amount"]) for line in final["lines"]] == [("96.950", "0.97")]


@pytest.mark.django_db
def test_seconds_round_half_up_to_the_millisecond_and_amounts_use_the_exact_ones(shop, owner_client, clock):
    start = at(2026, 11, 3, 10)
    run(shop, start, start + timedelta(seconds=1.0005), now=clock.now)  # 1.0005 s -> 1.001
    run(shop, start, start + timedelta(seconds=2.0004), now=clock.now, process_type="worker")  # -> 2.000
    rows = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11").json()["rows"]
    assert [r["seconds"] for r in rows] == ["1.001", "2.000"]
    [line] = owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").json()["lines"][:1]
    assert line["seconds"] == "1.001"


@pytest.mark.django_db
def test_the_months_draft_exists_as_soon_as_the_first_usage_is_metered(shop, owner_client, clock):
    # Nothing has run the invoices task (berth.billing.invoices, every 10 minutes).
    assert owner_client.get("/api/v1/orgs/acme/invoices/").json()["results"] == []
    assert owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").status_code == 404
    run(shop, at(2026, 11, 4, 5), now=at(2026, 11, 4, 5, 0, 2))  # healthy 2 s after it started
    [listed] = owner_client.get("/api/v1/orgs/acme/invoices/").json()["results"]
    assert (listed["period"], listed["state"], listed["total"]) == ("2026-11", "draft", "36.00")  # 1 h to now
    draft = owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").json()
    assert [(line["process_type"], line["seconds"], line["amount"]) for line in draft["lines"]] == [
        ("web", "3600.000", "36.00")
    ]
    assert draft["total"] == "36.00" and draft["generated_at"] is not None
    assert Invoice.objects.count() == 0  # read from the ledger; reading writes nothing


@pytest.mark.django_db
def test_the_draft_counts_to_now_between_runs_of_the_invoices_task(shop, owner_client, clock):
    run(shop, at(2026, 11, 4, 5), now=at(2026, 11, 4, 5))
    invoices_run(now=at(2026, 11, 4, 5, 30))  # the stored draft: 30 minutes
    clock.now = at(2026, 11, 4, 6)
    [listed] = owner_client.get("/api/v1/orgs/acme/invoices/").json()["results"]
    assert (listed["period"], listed["total"]) == ("2026-11", "36.00")  # an hour, not the stored half
    usage = owner_client.get("/api/v1/orgs/acme/usage/").json()
    draft = owner_client.get("/api/v1/orgs/acme/invoices/2026-11/").json()
    assert (draft["total"], draft["lines"][0]["seconds"]) == (usage["total_cost"], usage["total_seconds"])


@pytest.mark.django_db
def test_earlier_invoices_follow_the_draft_newest_first_page_by_page(shop, owner_client, clock):
    run(shop, at(2026, 9, 10), at(2026, 9, 10, 0, 0, 1), now=at(2026, 9, 11))
    run(shop, at(2026, 10, 10), at(2026, 10, 10, 0, 0, 2), now=at(2026, 10, 11))
    invoices_run(now=at(2026, 11, 2))  # September and October are finalized
    run(shop, at(2026, 11, 4), now=at(2026, 11, 4))
    body = owner_client.get("/api/v1/orgs/acme/invoices/").json()
    assert body["count"] == 3
    assert [(i["period"], i["state"]) for i in body["results"]] == [
        ("2026-11", "draft"),
        ("2026-10", "finalized"),
        ("2026-09", "finalized"),
    ]
    pages = [owner_client.get(f"/api/v1/orgs/acme/invoices/?page_size=2&page={n}").json() for n in (1, 2)]
    assert [[i["period"] for i in page["results"]] for page in pages] == [["2026-11", "2026-10"], ["2026-09"]]
    assert owner_client.get("/api/v1/orgs/acme/invoices/2026-10/").json()["total"] == "0.02"
