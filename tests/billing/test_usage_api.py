"""Usage so far through the API, in JSON and CSV, by app, process type, size and day."""

import csv
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from berth.billing.metering import usage_sync
from berth.billing.models import SizePrice
from berth.billing.services import size_price_set
from berth.core.errors import Invalid
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import at


@pytest.fixture
def usage(organization, members, freezer_now):
    from berth.applications.models import Release

    size = SizeFactory(name="small")
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.036"), effective_from=at(2026, 1, 1))
    host = HostFactory()
    for name, process_type, start, end in [
        ("shop", "web", at(2026, 11, 2, 22), at(2026, 11, 3, 2)),  # 2 h on the 2nd, 2 h on the 3rd
        ("shop", "worker", at(2026, 11, 3, 10), at(2026, 11, 3, 11)),
        ("blog", "web", at(2026, 11, 4), None),  # still running: counts to now
    ]:
        app = (
            AppFactory(organization=organization, name=name)
            if not organization.apps.filter(name=name).exists()
            else organization.apps.get(name=name)
        )
        release = Release.objects.get_or_create(
            app=app, version=1, defaults={"image": "x", "process_types": {}, "config": {}}
        )[0]
        container = ContainerFactory(
            host=host,
            app=app,
            release=release,
            size=size,
            process_type=process_type,
            started_at=start,
            finished_at=end,
            state=Container.State.REMOVED if end else Container.State.RUNNING,
        )
        usage_sync([container.pk], now=freezer_now)


@pytest.fixture
def freezer_now(monkeypatch):
    now = at(2026, 11, 4, 6)
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


@pytest.mark.django_db
def test_usage_by_app_process_type_and_size(usage, owner_client):
    body = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11").json()
    assert body["rows"] == [
        {"app": "blog", "process_type": "web", "size": "small", "seconds": "21600.000", "cost": "0.22"},
        {"app": "shop", "process_type": "web", "size": "small", "seconds": "14400.000", "cost": "0.14"},
        {"app": "shop", "process_type": "worker", "size": "small", "seconds": "3600.000", "cost": "0.04"},
    ]
    assert (body["total_seconds"], body["total_cost"], body["currency"]) == ("39600.000", "0.40", "USD")


@pytest.mark.django_db
def test_usage_by_day_splits_intervals_at_midnight(usage, owner_client):
    body = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11&group_by=day").json()
    assert [(r["day"], r["seconds"]) for r in body["rows"]] == [
        ("2026-11-02", "7200.000"),
        ("2026-11-03", "10800.000"),
        ("2026-11-04", "21600.000"),
    ]


@pytest.mark.django_db
def test_usage_as_csv(usage, owner_client):
    response = owner_client.get("/api/v1/orgs/acme/usage/?period=2026-11&group_by=app&format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="usage-acme-2026-11.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["app", "seconds", "cost", "currency"],
        ["blog", "21600.000", "0.22", "USD"],
        ["shop", "18000.000", "0.18", "USD"],
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "period=2026-13",
        "period=26-11",
        "period=\uff12\uff10\uff12\uff16-11",  # fullwidth digits, which int() reads
        "group_by=colour",
        "period=2026-11&group_by=" + "app," * 40,
    ],
)
def test_bad_usage_queries_are_400(usage, owner_client, query):
    response = owner_client.get(f"/api/v1/orgs/acme/usage/?{query}")
    assert response.status_code == 400
    assert response.json()["fields"]


@pytest.mark.django_db
def test_prices_apply_from_now_on_never_to_the_past(freezer_now):
    size = SizeFactory(name="tiny")
    with pytest.raises(Invalid, match="past usage keeps its price"):
        size_price_set(actor=None, size=size, price_per_hour=Decimal("1"), effective_from=at(2026, 11, 1))
    price = size_price_set(actor=None, size=size, price_per_hour=Decimal("1"))
    assert price.effective_from == freezer_now
