"""Operators' changes to billing: prices (from a moment on, never rewriting the past) and quotas."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from berth.audit.services import audit_record
from berth.core.errors import Conflict, Invalid
from berth.fleet.models import Size
from berth.tenancy.models import Organization, User

from .models import Quota, SizePrice

# A price may start "now" as the operator's clock has it: a few seconds of skew are not the past.
PAST_TOLERANCE = timedelta(seconds=60)


@transaction.atomic
def size_price_set(
    *, actor: User, size: Size, price_per_hour: Decimal, effective_from: datetime | None = None, currency: str = "USD"
) -> SizePrice:
    """Set a size's price from `effective_from` (now by default). Usage before it keeps its price."""
    effective_from = effective_from or timezone.now()
    if effective_from < timezone.now() - PAST_TOLERANCE:
        raise Invalid(
            "A price change applies from now or later; past usage keeps its price.",
            field="effective_from",
            code="price_in_past",
        )
    if price_per_hour < 0:
        raise Invalid("A price cannot be negative.", field="price_per_hour")
    try:
        with transaction.atomic():
            price = SizePrice.objects.create(
                size=size,
                price_per_hour=price_per_hour,
                currency=currency,
                effective_from=effective_from,
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict("This size already has a price from that moment.", field="effective_from") from None
    audit_record(
        actor=actor,
        action="price.set",
        target=size,
        changes={
            "price_per_hour": str(price_per_hour),
            "currency": currency,
            "effective_from": effective_from.isoformat(),
        },
    )
    return price


@transaction.atomic
def quota_set(*, actor: User, organization: Organization, **limits: int | None) -> Quota:
    """Set an organization's limits (None: the installation's default). Running containers are never
    stopped by a lower quota; it only refuses growth."""
    quota, _ = Quota.objects.select_for_update().get_or_create(organization=organization)
    for name, value in limits.items():
        setattr(quota, name, value)
    quota.save()
    audit_record(actor=actor, action="quota.set", target=quota, organization=organization, changes=dict(limits))
    return quota
