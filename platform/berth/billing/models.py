"""Prices, the usage ledger, invoices and quotas.

Money is never a float: prices are Decimal per hour with 6 decimal places, amounts are Decimal
cents. The one rounding rule (berth.billing.money) rounds once, per invoice line.
"""

from typing import TypedDict

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.db import models
from django.db.models import F, Func, Q, Value
from django.utils import timezone

from berth.tenancy.querysets import TenantQuerySet


class _Digits(TypedDict):
    max_digits: int
    decimal_places: int


PRICE: _Digits = {"max_digits": 14, "decimal_places": 6}
AMOUNT: _Digits = {"max_digits": 14, "decimal_places": 2}


class SizePrice(models.Model):
    """The price per hour of a size from a moment on; a later row takes over from its own moment."""

    size = models.ForeignKey("fleet.Size", on_delete=models.PROTECT, related_name="prices")
    price_per_hour = models.DecimalField(**PRICE)
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey("tenancy.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["size", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["size", "effective_from"], name="one_price_per_size_and_moment"),
            models.CheckConstraint(condition=Q(price_per_hour__gte=0), name="price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.size.name}: {self.price_per_hour} {self.currency}/h from {self.effective_from:%Y-%m-%d %H:%M}"


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = models.DateTimeField()  # only used inside the exclusion constraint


class NextRevision(Func):
    """The next value of the ledger's revision sequence (created by migration 0003)."""

    template = "nextval('billing_usagerecord_revision_seq')"
    output_field = models.BigIntegerField()


class UsageRecord(models.Model):
    """One interval of one container's life at one price, within one billing period.

    A container's life is split where the price changes and at each period boundary (midnight UTC
    of the 1st), so an invoice line is a plain sum. An open record (no `ended_at`) accrues up to now.
    """

    # Kept when the container's app is deleted: the ledger outlives what it measured.
    container = models.ForeignKey("fleet.Container", null=True, on_delete=models.SET_NULL, related_name="usage")
    # Indexed first in usage_org_period_end, which also serves what an index of its own would.
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.PROTECT, related_name="usage", db_index=False
    )
    app = models.ForeignKey("applications.App", null=True, on_delete=models.SET_NULL, related_name="usage")
    # Snapshots: an invoice still reads right after the app or size is gone.
    app_name = models.CharField(max_length=30)
    process_type = models.CharField(max_length=30)
    size_name = models.CharField(max_length=40)
    price_per_hour = models.DecimalField(**PRICE)
    currency = models.CharField(max_length=3)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # First day of the billing period the interval falls in.
    period = models.DateField()
    # Recorded after its period was closed: billed as an adjustment by the next invoice, which then
    # marks it in `invoice`. Records of a period recorded before it closed are billed by that
    # period's invoice and never rewritten (rewriting a month of the ledger is what took the time).
    late = models.BooleanField(default=False, db_default=False)
    invoice = models.ForeignKey("Invoice", null=True, blank=True, on_delete=models.SET_NULL, related_name="records")
    # Taken from one sequence when the record is written and again when it is closed, so the daily roll-up
    # (berth.billing.rollup) finds what changed since its last pass. Whoever closes a record sets it too.
    revision = models.BigIntegerField(db_default=NextRevision(), editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["container", "started_at"]
        constraints = [
            # Written idempotently: the same interval twice is the same row.
            models.UniqueConstraint(fields=["container", "started_at"], name="usage_once_per_start"),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")), name="usage_ends_after_it_starts"
            ),
            # No second of one container is ever billed twice.
            ExclusionConstraint(
                name="usage_no_overlap",
                expressions=[
                    ("container", RangeOperators.EQUAL),
                    (TsTzRange("started_at", "ended_at", Value("[)")), RangeOperators.OVERLAPS),
                ],
            ),
        ]
        indexes = [
            # ended_at last: usage reads find the open records and those ending today without the rest.
            models.Index(fields=["organization", "period", "ended_at"], name="usage_org_period_end"),
            models.Index(fields=["revision"], name="usage_revision"),
            models.Index(fields=["container"], condition=Q(ended_at__isnull=True), name="usage_open"),
            # Empty intervals are always read from the ledger (rollup.py); there are next to none.
            models.Index(fields=["organization", "period"], condition=Q(ended_at=F("started_at")), name="usage_empty"),
            models.Index(fields=["period"], condition=Q(late=True, invoice__isnull=True), name="usage_late_unbilled"),
        ]

    def __str__(self) -> str:
        return f"{self.app_name}/{self.process_type} {self.started_at:%Y-%m-%d %H:%M:%S} to {self.ended_at or 'now'}"


class UsageDaily(models.Model):
    """Seconds of closed usage of one organization on one day (UTC) per app, process type, size and price.

    A roll-up of the ledger kept by berth.billing.rollup for usage reads: it holds exactly the closed,
    non-empty records of the day's period whose revision is at most UsageRollupMark.revision.
    """

    # Indexed first in usage_daily_once.
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    app_name = models.CharField(max_length=30)
    process_type = models.CharField(max_length=30)
    size_name = models.CharField(max_length=40)
    price_per_hour = models.DecimalField(**PRICE)
    currency = models.CharField(max_length=3)
    # Exact (microseconds), as the ledger's intervals are: amounts are rounded only where they are shown.
    seconds = models.DecimalField(max_digits=18, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "app_name", "process_type", "size_name", "price_per_hour", "currency"],
                name="usage_daily_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.app_name}/{self.process_type} {self.size_name}: {self.seconds} s"


class UsageRollupMark(models.Model):
    """How far the daily roll-up has read the ledger: every record of a revision up to this one is in it."""

    revision = models.BigIntegerField(default=0)
    rolled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="one_rollup_mark")]

    def __str__(self) -> str:
        return f"usage rolled up to revision {self.revision}"


class Invoice(models.Model):
    """One organization's bill for one calendar month (UTC): draft while open, then final and frozen."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.PROTECT, related_name="invoices")
    period = models.DateField(help_text="First day of the month billed.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    currency = models.CharField(max_length=3, default="USD")
    total = models.DecimalField(**AMOUNT, default=0)
    generated_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "-period"]
        constraints = [models.UniqueConstraint(fields=["organization", "period"], name="one_invoice_per_org_period")]

    def __str__(self) -> str:
        return f"{self.organization.slug} {self.period:%Y-%m} ({self.state})"


class InvoiceLine(models.Model):
    """Usage of one app, process type and size at one price; an adjustment line carries late usage."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    app_name = models.CharField(max_length=30)
    process_type = models.CharField(max_length=30)
    size_name = models.CharField(max_length=40)
    price_per_hour = models.DecimalField(**PRICE)
    # The line's exact seconds rounded half up to the millisecond, as shown; its amount is computed from
    # the exact seconds. Lines written before were whole seconds, rounded down.
    seconds = models.DecimalField(max_digits=18, decimal_places=3)
    amount = models.DecimalField(**AMOUNT)
    # For late usage of an earlier, already finalized period: that period.
    adjustment_for = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "adjustment_for", "app_name", "process_type", "size_name", "price_per_hour"]

    def __str__(self) -> str:
        return f"{self.app_name}/{self.process_type} {self.size_name}: {self.amount}"


class Quota(models.Model):
    """Limits of one organization; rows absent or fields empty mean the installation's defaults."""

    organization = models.OneToOneField("tenancy.Organization", on_delete=models.CASCADE, related_name="quota")
    max_apps = models.PositiveIntegerField(null=True, blank=True)
    max_containers = models.PositiveIntegerField(null=True, blank=True)
    max_memory_mb = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"quota of {self.organization.slug}"


class ClosedPeriod(models.Model):
    """A billing period whose invoices are final; usage of it found later goes on an adjustment line."""

    period = models.DateField(unique=True)
    closed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.period:%Y-%m} closed"
