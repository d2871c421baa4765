"""Usage and billing: what an organization's containers ran and cost, its invoices and its quotas.

Every number is read through the selectors the API reads (`billing.selectors.usage_for_period`,
`invoices_of`, `invoice_of`, `billing.quotas.limits_for` and `usage_of`), so the page, its CSV and the
API always agree; these views only lay the numbers out. Seconds are shown as hours, amounts as the
selectors round them. For owners, admins and the billing role (`billing.view`).
"""

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from berth.api.renderers import UsageCSVRenderer
from berth.api.serializers import UsageReportSerializer
from berth.billing.models import Invoice
from berth.billing.money import next_period, parse_period, period_end, period_of
from berth.billing.quotas import limits_for, usage_of
from berth.billing.selectors import DEFAULT_GROUPS, invoice_of, invoices_of, usage_for_period
from berth.core.errors import Invalid
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action

from ..access import org_page
from ..rendering import render_page

# Rows of the CSV: the finest grouping the report has, so a spreadsheet can pivot it any way.
CSV_GROUPS = ("day", "app", "process_type", "size")
# A year of monthly invoices per page, the current draft first.
INVOICES_PER_PAGE = 12
HOUR = Decimal(3600)
HUNDREDTH = Decimal("0.01")


def hours(seconds: Decimal) -> Decimal:
    """Seconds as hours to the hundredth, for reading only: every amount comes from the exact seconds."""
    return (seconds / HOUR).quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


def price(value: Decimal) -> str:
    """A price per hour without the trailing zeros of its six stored places, keeping two: 0.036, 36.00."""
    whole, _, fraction = f"{value:f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _period(value: str | None, now: datetime) -> date:
    """The period the URL names (the API's parser); a month that cannot exist is a 404 page."""
    try:
        return parse_period(value, now=now)
    except Invalid:
        raise Http404("No such month: give it as YYYY-MM.") from None


def _stored_invoices(request: HttpRequest, membership: Membership) -> QuerySet[Invoice]:
    """The organization's stored invoices through the one scoping, as the API reads them."""
    return Invoice.objects.for_actor(request.user, Action.BILLING_VIEW).filter(organization=membership.organization)


def _month_before(period: date) -> date | None:
    """The month before, while parse_period would take it (from January 2000 on)."""
    before = date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)
    return before if before.year >= 2000 else None


def _days(period: date, by_day: dict, now: datetime) -> list[dict]:
    """Each day of the period up to today, with its hours and cost; a day without usage shows zero."""
    rows = {row["day"]: row for row in by_day["rows"]}
    first = period
    last = min(now.astimezone(UTC).date(), period_end(period).date() - timedelta(days=1))
    days = []
    for offset in range((last - first).days + 1):
        day = (first + timedelta(days=offset)).isoformat()
        row = rows.get(day, {"seconds": Decimal("0.000"), "cost": Decimal("0.00")})
        days.append({"day": day, "hours": hours(row["seconds"]), "cost": row["cost"]})
    return days


def _quotas(membership: Membership) -> list[dict]:
    """Each limit with what the organization's apps use of it, as the API's quota route reads them."""
    limits = limits_for(membership.organization)
    used = usage_of(membership.organization)
    return [
        {"name": "Apps", "used": used["apps"], "limit": limits.max_apps, "unit": ""},
        {"name": "Containers", "used": used["containers"], "limit": limits.max_containers, "unit": ""},
        {"name": "Memory", "used": used["memory_mb"], "limit": limits.max_memory_mb, "unit": "MB"},
    ]


@org_page(Action.BILLING_VIEW)
@require_safe
def usage(request: HttpRequest, membership: Membership) -> HttpResponse:
    """`/orgs/<slug>/usage/?period=YYYY-MM`: a month's usage by day and by app, the quotas, the invoices."""
    now = timezone.now()
    period = _period(request.GET.get("period"), now)
    current = period_of(now)
    org_id = membership.organization_id
    report = usage_for_period(organization_id=org_id, period=period, group_by=DEFAULT_GROUPS, now=now)
    by_day = usage_for_period(organization_id=org_id, period=period, group_by=("day",), now=now)
    days = _days(period, by_day, now)
    invoices = Paginator(
        invoices_of(_stored_invoices(request, membership), organization_id=org_id, now=now), INVOICES_PER_PAGE
    )
    context = {
        "period": period,
        "period_param": period.strftime("%Y-%m"),
        "is_current": period == current,
        "previous_period": _month_before(period),
        "next_period": next_period(period) if period < current else None,
        "current_param": current.strftime("%Y-%m"),
        "report": report,
        "total_hours": hours(report["total_seconds"]),
        "rows": [{**row, "hours": hours(row["seconds"])} for row in report["rows"]],
        "days": days,
        # What the chart draws, as exact decimal strings (json_script encodes a Decimal as its text).
        "chart": {"currency": report["currency"], "days": [d["day"] for d in days], "cost": [d["cost"] for d in days]},
        "quotas": _quotas(membership),
        "invoices": invoices.get_page(request.GET.get("page")),
    }
    return render_page(request, "dashboard/billing/usage.html", context)


@org_page(Action.BILLING_VIEW)
@require_safe
def usage_csv(request: HttpRequest, membership: Membership) -> HttpResponse:
    """`/orgs/<slug>/usage.csv?period=YYYY-MM`: the month's usage by day, app, process type and size, in the
    API's CSV (its serializer writes the exact decimals, its renderer the columns)."""
    now = timezone.now()
    period = _period(request.GET.get("period"), now)
    report = usage_for_period(organization_id=membership.organization_id, period=period, group_by=CSV_GROUPS, now=now)
    body = UsageCSVRenderer().render(UsageReportSerializer(report).data)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{membership.organization.slug}-{report["period"]}.csv"'
    )
    return response


@org_page(Action.BILLING_VIEW)
@require_safe
def invoice_detail(request: HttpRequest, membership: Membership, period: str) -> HttpResponse:
    """`/orgs/<slug>/invoices/<YYYY-MM>/`: one invoice and its lines; this month's is the live draft."""
    now = timezone.now()
    month = _period(period, now)
    invoice = invoice_of(
        _stored_invoices(request, membership), organization_id=membership.organization_id, period=month, now=now
    )
    if invoice is None:
        raise Http404("No invoice for this month.")
    lines = [
        {"line": line, "hours": hours(line.seconds), "price": price(line.price_per_hour)}
        for line in invoice.line_list  # type: ignore[attr-defined]  # set by invoice_of, as the API reads it
    ]
    context = {"invoice": invoice, "lines": lines, "period_param": month.strftime("%Y-%m")}
    return render_page(request, "dashboard/billing/invoice.html", context)
