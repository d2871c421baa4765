"""The organization pages: where a signed-in person lands, creating an organization, its home."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from berth.api.serializers import OrganizationCreateSerializer
from berth.applications.models import App
from berth.billing.money import period_of
from berth.billing.selectors import app_costs
from berth.core.errors import BerthError
from berth.deployments.selectors import STATUS_FIELDS, AppStatus, AppSummary, app_statuses
from berth.tenancy import services
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action, role_allows
from berth.tenancy.selectors import organizations_of

from ..access import actor, org_page
from ..forms import add_refusal, parsed_as_api
from ..rendering import render_page

# The org home is a plain table over Django's Paginator, not a django-tables2 Table: it has no column to
# sort, its cells are written out per row in Python (AppRow), and django-tables2 took 21 ms to render the
# 50 rows that the template renders in 3 ms (same machine), where the whole page has 15 ms of CPU.
APPS_PER_PAGE = 50
# The API's search over names takes as many characters as a name has (api/views/applications.py).
SEARCH_LENGTH = 30


def home(request: HttpRequest) -> HttpResponse:
    """`/`: the sign-in page for visitors; a member's first organization, or creating one, for people."""
    if not request.user.is_authenticated:
        return redirect("dashboard:signin")
    first = organizations_of(request.user).values_list("slug", flat=True).first()
    return redirect("dashboard:org-home", first) if first else redirect("dashboard:org-create")


class OrganizationForm(forms.Form):
    """An organization's name and slug as typed; the API's OrganizationCreateSerializer validates them."""

    name = forms.CharField(label="Name", help_text="How people see it. It can change later.")
    slug = forms.CharField(
        label="Slug",
        help_text="Its name in URLs and the API: lowercase letters, digits and hyphens. It cannot change.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}),
    )


@login_required
def org_create(request: HttpRequest) -> HttpResponse:
    """`/orgs/new/`: create an organization with the person as its first owner, as the API does."""
    form = OrganizationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and (data := parsed_as_api(form, OrganizationCreateSerializer)) is not None:
        try:
            organization = services.organization_create(actor=actor(request), **data)
        except BerthError as error:
            add_refusal(form, error)
        else:
            messages.success(request, f"Created the organization {organization.name}; you are its owner.")
            return redirect("dashboard:org-home", organization.slug)
    response = render_page(request, "dashboard/orgs/create.html", {"form": form})
    if form.is_bound:
        response.status_code = 400  # only a refused form is shown again after a POST
    return response


@dataclass(frozen=True)
class AppRow:
    """One line of the org home, as it reads. Written out here rather than in the template: each variable
    a template resolves costs CPU, a page has 50 rows, and the whole page has 15 ms of CPU."""

    name: str
    description: str
    url: str
    delete_url: str
    status: AppStatus
    detail: str
    release: str
    containers: str
    # This month so far, in the usage report's currency; None when the role may not see billing.
    cost: str | None


def _app_urls(view: str, org_slug: str) -> Callable[[str], str]:
    """`urls(name)`: the URL of an app's `view`, reversed once per page (reversing it per row cost more
    CPU than the rest of the rows). App names are slugs, so a name goes into the URL as it is."""
    pattern = reverse(view, args=[org_slug, "__app__"])
    return lambda name: pattern.replace("__app__", name)


def _shortened(text: str, length: int) -> str:
    """`text` cut to `length` characters with an ellipsis (Truncator, per row, costs ten times more)."""
    return text if len(text) <= length else f"{text[: length - 1].rstrip()}…"


def _detail(summary: AppSummary) -> str:
    """What the status badge leaves to say (docs/dashboard.md#organizations-and-apps)."""
    if summary.status == AppStatus.DEPLOYING:
        return f"to v{summary.deploying_version}"
    if summary.status == AppStatus.FAILED:
        reason = _shortened(summary.failure, 100)
        return f"v{summary.failed_version}: {reason}" if reason else f"v{summary.failed_version}"
    if summary.status == AppStatus.CRASHED:
        if summary.crash_rollback:
            return "rolled back from a crash loop"
        return f"{summary.live} of {summary.wanted} containers live"
    if summary.status == AppStatus.NEW:
        return "nothing deployed yet"
    return ""


@org_page(Action.ORG_VIEW)
def org_home(request: HttpRequest, membership: Membership) -> HttpResponse:
    """`/orgs/<slug>/`: the organization's apps, 50 a page, with a status, release, containers and cost each.

    The queries do not grow with the number of apps: a count and a page of apps, two for the page's
    statuses (deployments.selectors.app_statuses) and the month's costs of the page's apps and of all of
    them (billing.selectors.app_costs)."""
    query = request.GET.get("q", "").strip()[:SEARCH_LENGTH]
    apps = App.objects.for_actor(request.user, Action.APP_VIEW).filter(organization=membership.organization)
    if query:
        apps = apps.filter(name__icontains=query)
    apps = apps.select_related("current_release").only("name", "description", *STATUS_FIELDS).order_by("name")
    page = Paginator(apps, APPS_PER_PAGE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    now = timezone.now()
    statuses = app_statuses(shown, now=now)
    usage = _usage(membership, shown, now) if role_allows(membership.role, Action.BILLING_VIEW) else None
    costs = usage["costs"] if usage else None
    rows = _rows(shown, statuses=statuses, costs=costs, org_slug=membership.organization.slug)
    context = {"rows": rows, "page": page, "query": query, "usage": usage}
    return render_page(request, "dashboard/orgs/home.html", context, fragment="dashboard/orgs/_apps.html")


def _rows(
    apps: list[App], *, statuses: dict[int, AppSummary], costs: dict[str, Decimal] | None, org_slug: str
) -> list[AppRow]:
    app_url = _app_urls("dashboard:app", org_slug)
    delete_url = _app_urls("dashboard:app-delete", org_slug)
    rows = []
    for app in apps:
        summary = statuses[app.pk]
        rows.append(
            AppRow(
                name=app.name,
                description=_shortened(app.description, 80),
                url=app_url(app.name),
                delete_url=delete_url(app.name),
                status=summary.status,
                detail=_detail(summary),
                release=f"v{app.current_release.version}" if app.current_release else "",
                containers=f"{summary.live} / {summary.wanted}",
                # An app that ran nothing this month has no row in the usage report.
                cost=str(costs.get(app.name, Decimal("0.00"))) if costs is not None else None,
            )
        )
    return rows


def _usage(membership: Membership, apps: list[App], now: datetime) -> dict:
    """What the organization's apps cost this month so far: the shown apps' costs and the total, as the
    usage report by app has them (the ledger keeps names: a deleted app's usage still counts in the total)."""
    return app_costs(
        organization_id=membership.organization_id, period=period_of(now), apps=[a.name for a in apps], now=now
    )
