"""Invoices from the ledger: to the cent, across a period boundary and a price change, idempotent,
final once finalized, and late usage on an adjustment line (issue 4, "Must hold")."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from berth.billing.invoicing import invoices_run
from berth.billing.metering import usage_sync
from berth.billing.models import Invoice, SizePrice, UsageRecord
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, OrganizationFactory, SizeFactory
from tests.timing import at


@pytest.fixture
def world(db):
    org = OrganizationFactory(slug="acme")
    app = AppFactory(organization=org, name="shop")
    size = SizeFactory(name="small", memory_mb=128)
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.036000"), effective_from=at(2026, 1, 1))
    return {"org": org, "app": app, "size": size, "host": HostFactory()}


def container(world, start, end=None, **fields):
    from berth.applications.models import Release

    release = Release.objects.filter(app=world["app"]).first() or Release.objects.create(
        app=world["app"], version=1, image="berth-test/web:v1", process_types={}, config={}
    )
    row = ContainerFactory(
        host=world["host"],
        app=world["app"],
        release=release,
        size=world["size"],
        started_at=start,
        finished_at=end,
        state=Container.State.REMOVED if end else Container.State.RUNNING,
        **fields,
    )
    usage_sync([row.pk], now=end or at(2026, 12, 15))
    return row


def test_a_container_across_midnight_of_the_first_is_split_and_billed_per_month(world):
    # 2026-10-31 22:00 to 2026-11-01 02:00 UTC: two hours in October, two in November.
    c = container(world, at(2026, 10, 31, 22), at(2026, 11, 1, 2))
    records = list(UsageRecord.objects.filter(container=c).order_by("started_at"))
    assert [(r.started_at, r.ended_at, r.period) for r in records] == [
        (at(2026, 10, 31, 22), at(2026, 11, 1), date(2026, 10, 1)),
        (at(2026, 11, 1), at(2026, 11, 1, 2), date(2026, 11, 1)),
    ]
    invoices_run(now=at(2026, 11, 1, 3))  # October's grace (1 h) has passed: October is finalized
    october = Invoice.objects.get(period=date(2026, 10, 1))
    assert october.state == "finalized"
    [line] = october.lines.all()
    assert (line.seconds, line.amount) == (7200, Decimal("0.07"))  # 2 h x 0.036 = 0.072 -> 0.07
    november = Invoice.objects.get(period=date(2026, 11, 1))
    assert november.state == "draft" and november.total == Decimal("0.07")


def test_a_price_change_mid_period_bills_each_part_at_its_price(world):
    SizePrice.objects.create(
        size=world["size"], price_per_hour=Decimal("0.090000"), effective_from=at(2026, 11, 10, 12)
    )
    container(world, at(2026, 11, 10, 10), at(2026, 11, 10, 15))  # 2 h at 0.036, 3 h at 0.09
    container(world, at(2026, 11, 20), at(2026, 11, 20, 0, 20, 1))  # 1201 s at 0.09
    invoices_run(now=at(2026, 11, 25))
    invoice = Invoice.objects.get(period=date(2026, 11, 1))
    lines = {(line.price_per_hour, line.seconds): line.amount for line in invoice.lines.all()}
    # By hand: 7200 s x 0.036 / 3600 = 0.072 -> 0.07; (10800 + 1201) s x 0.09 / 3600 = 0.300025 -> 0.30
    assert lines == {(Decimal("0.036000"), 7200): Decimal("0.07"), (Decimal("0.090000"), 12001): Decimal("0.30")}
    assert invoice.total == Decimal("0.37") == sum(lines.values())


def test_half_a_cent_rounds_up_once_per_line(world):
    # 125 s x 0.036 / 3600 = 0.00125; 4 containers -> 500 s -> 0.005 -> 0.01 (per line, not per record)
    for minute in range(4):
        start = at(2026, 11, 3, 0, minute * 5)
        container(world, start, start + timedelta(seconds=125))
    invoices_run(now=at(2026, 11, 4))
    [line] = Invoice.objects.get(period=date(2026, 11, 1)).lines.all()
    assert (line.seconds, line.amount) == (500, Decimal("0.01"))


def test_open_usage_accrues_to_now_in_the_draft(world):
    container(world, at(2026, 11, 5))  # still running
    invoices_run(now=at(2026, 11, 5, 10))
    draft = Invoice.objects.get(period=date(2026, 11, 1))
    assert draft.state == "draft" and draft.lines.get().seconds == 36000 and draft.total == Decimal("0.36")
    invoices_run(now=at(2026, 11, 5, 20))
    draft.refresh_from_db()
    assert draft.lines.get().seconds == 72000 and Invoice.objects.count() == 1


def test_generating_again_changes_nothing_and_a_final_invoice_never_changes(world):
    container(world, at(2026, 10, 2), at(2026, 10, 2, 1))
    invoices_run(now=at(2026, 11, 2))
    october = Invoice.objects.get(period=date(2026, 10, 1))
    snapshot = (october.total, list(october.lines.values_list("seconds", "amount")), october.finalized_at)
    invoices_run(now=at(2026, 11, 3))
    invoices_run(now=at(2026, 12, 5))
    october.refresh_from_db()
    assert (october.total, list(october.lines.values_list("seconds", "amount")), october.finalized_at) == snapshot
    assert Invoice.objects.filter(period=date(2026, 10, 1)).count() == 1


def test_late_usage_of_a_closed_period_lands_on_the_next_invoice_as_an_adjustment(world):
    container(world, at(2026, 10, 2), at(2026, 10, 2, 1))
    invoices_run(now=at(2026, 11, 2))
    october = Invoice.objects.get(period=date(2026, 10, 1))
    assert october.total == Decimal("0.04")
    # A host that was unreachable reports a container that ran in October, after October closed.
    container(world, at(2026, 10, 20), at(2026, 10, 20, 10))
    invoices_run(now=at(2026, 11, 3))
    october.refresh_from_db()
    assert october.total == Decimal("0.04")  # unchanged
    november = Invoice.objects.get(period=date(2026, 11, 1))
    [adjustment] = november.lines.filter(adjustment_for=date(2026, 10, 1))
    assert (adjustment.seconds, adjustment.amount) == (36000, Decimal("0.36"))
    invoices_run(now=at(2026, 12, 2))  # November is finalized with its adjustment, once
    november.refresh_from_db()
    assert november.state == "finalized" and november.total == Decimal("0.36")
    late = UsageRecord.objects.get(late=True)
    assert (late.started_at, late.invoice) == (at(2026, 10, 20), november)


def test_each_organization_gets_its_own_invoice(world):
    other = OrganizationFactory(slug="globex")
    container(world, at(2026, 11, 2), at(2026, 11, 2, 1))
    app = AppFactory(organization=other, name="api")
    container({**world, "app": app, "org": other}, at(2026, 11, 2), at(2026, 11, 2, 2), organization=other)
    invoices_run(now=at(2026, 11, 3))
    totals = dict(Invoice.objects.values_list("organization__slug", "total"))
    assert totals == {"acme": Decimal("0.04"), "globex": Decimal("0.07")}
