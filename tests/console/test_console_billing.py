"""Console pages for billing: prices are added from now on through the service, invoices are read-only."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from berth.audit.models import AuditEvent
from berth.billing.models import Invoice, InvoiceLine, SizePrice
from tests.factories import OrganizationFactory, SizeFactory


def price_form(size, effective_from):
    return {
        "size": size.pk,
        "price_per_hour": "0.050000",
        "currency": "USD",
        "effective_from_0": effective_from.strftime("%Y-%m-%d"),
        "effective_from_1": effective_from.strftime("%H:%M:%S"),
    }


@pytest.mark.django_db
def test_a_price_is_added_through_the_service_and_audited(operator_client):
    size = SizeFactory(name="small")
    soon = timezone.now() + timedelta(hours=1)
    response = operator_client.post("/console/billing/sizeprice/add/", price_form(size, soon))
    assert response.status_code == 302
    assert SizePrice.objects.get(size=size).price_per_hour == Decimal("0.05")
    event = AuditEvent.objects.get(action="price.set")
    assert (event.source, event.changes["price_per_hour"]) == ("console", "0.050000")


@pytest.mark.django_db
def test_a_price_in_the_past_is_refused(operator_client):
    size = SizeFactory(name="small")
    response = operator_client.post(
        "/console/billing/sizeprice/add/", price_form(size, datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert response.status_code == 200
    assert "past usage keeps its price" in response.content.decode()
    assert not SizePrice.objects.exists()


@pytest.mark.django_db
def test_invoices_are_readable_and_never_editable(operator_client):
    invoice = Invoice.objects.create(
        organization=OrganizationFactory(slug="acme"),
        period=date(2026, 10, 1),
        state="finalized",
        total=Decimal("1.23"),
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        app_name="shop",
        process_type="web",
        size_name="small",
        price_per_hour=Decimal("0.036"),
        seconds=3600,
        amount=Decimal("0.04"),
    )
    listing = operator_client.get("/console/billing/invoice/").content.decode()
    assert "acme" in listing and "1.23" in listing
    page = operator_client.get(f"/console/billing/invoice/{invoice.pk}/change/").content.decode()
    assert "shop" in page and "0.04" in page
    assert operator_client.post(f"/console/billing/invoice/{invoice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator_client.get("/console/billing/usagerecord/").status_code == 200
