"""Invoices from the ledger, with SQL aggregation over all organizations at once.

`invoices_run` is what the periodic task does, and it is idempotent:
- periods that ended (plus a grace for late observations) are finalized once: their draft
  invoices get their lines, records are marked as billed, and nothing changes them again;
- the current period's drafts are recomputed, open records accruing up to now;
- usage of a closed period that was not billed (it arrived late) goes on an adjustment line of
  the next invoice, never lost and never billed twice.
Amounts: exact seconds * price per hour / 3600, rounded once per line, half up to the cent; a line's
seconds are shown rounded half up to the millisecond.
The API reads the current period's draft live from the ledger (`draft_live`), with the same SQL.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from .metering import usage_sync_all
from .models import ClosedPeriod, Invoice, InvoiceLine, UsageRecord
from .money import period_end, period_of

FINALIZE_GRACE = timedelta(hours=1)

# The SQL below interpolates only these constant fragments; every value is a query parameter.
# Usage the draft invoice `i` of a period bills: the period's own records, and records of closed
# periods that were recorded late and are not billed yet (adjustments).
_UNBILLED = """
    ((r.period = %(period)s AND NOT r.late)
     OR (r.late AND r.invoice_id IS NULL AND r.period < %(period)s))
"""
_ITS_DRAFT = "i.organization_id = r.organization_id AND i.period = %(period)s AND i.state = 'draft'"
# Seconds of a record; %(cutoff)s is where open records stop: now for drafts, the period's end when finalizing.
_SECONDS = "EXTRACT(EPOCH FROM (LEAST(COALESCE(r.ended_at, %(cutoff)s), %(cutoff)s) - r.started_at))"
# The lines of a period's drafts, the one definition the stored drafts and the live read (draft_live) share:
# per app, process type, size, price and adjusted period, exact seconds summed, then rounded once per line:
# the amount half up to the cent, the seconds shown half up to the millisecond. `{owner}` is what a line
# belongs to (the stored draft's id, or the organization when read live), `{join}` and `{scope}` narrow it.
_LINES = f"""
    SELECT {{owner}}, r.app_name, r.process_type, r.size_name, r.price_per_hour,
           ROUND(SUM({_SECONDS}), 3),
           ROUND(SUM({_SECONDS}) * r.price_per_hour / 3600, 2),
           CASE WHEN r.period < %(period)s THEN r.period END{{extra}}
    FROM billing_usagerecord r {{join}}
    WHERE {_UNBILLED} {{scope}}
    GROUP BY {{owner}}, r.app_name, r.process_type, r.size_name, r.price_per_hour,
             CASE WHEN r.period < %(period)s THEN r.period END
"""


def _execute(sql: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _ensure_invoices(period: date) -> None:
    """A draft for every organization with usage this invoice would carry."""
    _execute(
        f"""
        INSERT INTO billing_invoice (organization_id, period, state, currency, total, generated_at)
        SELECT DISTINCT r.organization_id, %(period)s::date, 'draft', r.currency, 0, now()
        FROM billing_usagerecord r
        WHERE {_UNBILLED}
        ON CONFLICT (organization_id, period) DO NOTHING
        """,
        {"period": period},
    )


def _compute_lines(period: date, cutoff: datetime) -> None:
    params = {"period": period, "cutoff": cutoff}
    _execute(
        "DELETE FROM billing_invoiceline WHERE invoice_id IN "
        "(SELECT id FROM billing_invoice WHERE period = %(period)s AND state = 'draft')",
        params,
    )
    lines = _LINES.format(owner="i.id", extra="", join=f"JOIN billing_invoice i ON {_ITS_DRAFT}", scope="")
    _execute(
        "INSERT INTO billing_invoiceline"
        f" (invoice_id, app_name, process_type, size_name, price_per_hour, seconds, amount, adjustment_for) {lines}",
        params,
    )
    _execute(
        """
        UPDATE billing_invoice i SET generated_at = now(), total = COALESCE(
            (SELECT SUM(l.amount) FROM billing_invoiceline l WHERE l.invoice_id = i.id), 0)
        WHERE i.period = %(period)s AND i.state = 'draft'
        """,
        params,
    )


@transaction.atomic
def finalize_period(period: date) -> int:
    """Bill a period that has ended, once; returns how many invoices were finalized."""
    # Until this commits, no usage record is written: one recorded meanwhile is late by the time
    # its INSERT runs, never lost between "billed here" and "billed as an adjustment".
    _execute("LOCK TABLE billing_usagerecord IN SHARE ROW EXCLUSIVE MODE", {})
    _ensure_invoices(period)
    _compute_lines(period, period_end(period))
    _execute(
        # Only late records are marked: the period's own ones are billed by definition.
        "UPDATE billing_usagerecord r SET invoice_id = i.id FROM billing_invoice i "
        f"WHERE {_ITS_DRAFT} AND r.late AND r.invoice_id IS NULL AND r.period < %(period)s",
        {"period": period},
    )
    finalized = Invoice.objects.filter(period=period, state=Invoice.State.DRAFT).update(
        state=Invoice.State.FINALIZED, finalized_at=timezone.now()
    )
    ClosedPeriod.objects.get_or_create(period=period)
    return finalized


@transaction.atomic
def refresh_drafts(period: date, now: datetime) -> None:
    """Recompute the open period's drafts, open usage counted up to now."""
    _ensure_invoices(period)
    _compute_lines(period, now)


def draft_live(*, organization_id: int, now: datetime) -> Invoice | None:
    """The organization's draft of the current period as the invoices task would write it at `now`, read
    from the ledger, or None without usage. Unsaved; its lines are in `line_list`.

    The stored draft is refreshed every 10 minutes and made only then, while the ledger has a
    container's usage from the moment it is observed: reads of the open month take this instead, so
    the draft exists with the first usage and agrees with the usage report. It costs one query over
    the organization's records of the month (usage_org_period_end), where a refresh of every draft
    sums the whole ledger (2 s for a million records: benchmarks/results/invoice_generation.md).
    """
    period = period_of(now)
    sql = _LINES.format(
        owner="r.organization_id", extra=", MIN(r.currency)", join="", scope="AND r.organization_id = %(org)s"
    )
    with connection.cursor() as cursor:
        # Ordered as the model orders stored lines: adjustments first, as a NULL adjustment_for sorts last.
        cursor.execute(f"{sql} ORDER BY 8, 2, 3, 4, 5", {"period": period, "cutoff": now, "org": organization_id})
        rows = cursor.fetchall()
    if not rows:
        return None
    lines = [
        InvoiceLine(
            app_name=app_name,
            process_type=process_type,
            size_name=size_name,
            price_per_hour=price,
            seconds=seconds,
            amount=amount,
            adjustment_for=adjustment_for,
        )
        for _, app_name, process_type, size_name, price, seconds, amount, adjustment_for, _ in rows
    ]
    invoice = Invoice(
        organization_id=organization_id,
        period=period,
        state=Invoice.State.DRAFT,
        currency=rows[0][-1],
        # As the stored draft's total: the sum of its lines, each rounded already.
        total=sum((line.amount for line in lines), Decimal("0.00")),
        generated_at=now,
    )
    # As billing.selectors.invoice_of's Prefetch(to_attr="line_list") gives a stored invoice its lines; django-stubs
    # refuses that prefetch if the model declares the attribute, so it is set undeclared.
    invoice.line_list = lines  # type: ignore[attr-defined]
    return invoice


def periods_to_finalize(now: datetime) -> list[date]:
    """Ended periods not closed yet with usage or a draft (late usage alone makes one), oldest first,
    once their grace has passed."""
    current = period_of(now)
    closed = set(ClosedPeriod.objects.values_list("period", flat=True))
    # order_by(): the model's default ordering would turn DISTINCT into one row per record.
    with_usage = (
        UsageRecord.objects.filter(period__lt=current, invoice__isnull=True)
        .order_by()
        .values_list("period", flat=True)
        .distinct()
    )
    with_drafts = Invoice.objects.filter(period__lt=current, state=Invoice.State.DRAFT).values_list("period", flat=True)
    candidates = sorted((set(with_usage) | set(with_drafts)) - closed)
    return [p for p in candidates if now >= period_end(p) + FINALIZE_GRACE]


def invoices_run(*, now: datetime) -> dict:
    """The periodic job: meter, finalize what ended, refresh the drafts."""
    usage_sync_all(now=now)
    finalized = [finalize_period(p) for p in periods_to_finalize(now)]
    current = period_of(now)
    # The current draft: the first period not closed, which is the current one once all ended ones are.
    refresh_drafts(current, now)
    return {"finalized_periods": len(finalized), "current": current.isoformat()}
