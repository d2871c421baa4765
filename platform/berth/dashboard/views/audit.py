"""An organization's audit log, for its owners and admins: newest first, filtered by actor, action and date.

The rows and the filtering are the API's (AuditEventViewSet): the same scoping (`for_actor` with
audit.view, in the organization of the URL) and the same `AuditEventFilter`. The form only turns days
into the filter's time range.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse

from berth.api.filters import AuditEventFilter
from berth.audit.models import AuditEvent
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action

from ..access import org_page
from ..rendering import render_page

PER_PAGE = 50
# The filter's fields, and the form field each one's refusal is shown under.
FILTER_FIELDS = {"actor": "actor", "action": "action", "since": "date_from", "until": "date_to"}


class AuditFilterForm(forms.Form):
    """The log's filters as people pick them: an email, an action and whole days (UTC), both ends included."""

    actor = forms.CharField(label="Actor (email)", required=False, widget=forms.TextInput(attrs={"inputmode": "email"}))
    action = forms.CharField(label="Action", required=False, widget=forms.Select)
    date_from = forms.DateField(label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        chosen = self.data.get("action", "")
        known = sorted({*actions, chosen} - {""})
        self.fields["action"].widget.choices = [("", "Any action"), *((action, action) for action in known)]

    def filter_data(self) -> dict[str, str]:
        """The API filter's parameters for what was picked: a day range becomes [first 00:00, day after last)."""
        data = self.cleaned_data
        params = {"actor": data["actor"].strip(), "action": data["action"]}
        if data["date_from"]:
            params["since"] = start_of(data["date_from"])
        if data["date_to"]:
            params["until"] = start_of(data["date_to"] + timedelta(days=1))
        return {name: value for name, value in params.items() if value}


def start_of(day: date) -> str:
    return datetime.combine(day, time.min, tzinfo=UTC).isoformat()


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    changes: list[tuple[str, str]]


def compact(value: object) -> str:
    """A change's value on one line: lists in brackets, nested objects as key: value."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {compact(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(compact(item) for item in value) + "]"
    return "—" if value is None or value == "" else str(value)


def rows_of(page: Page) -> list[Row]:
    return [
        Row(event=event, changes=[(key, compact(value)) for key, value in (event.changes or {}).items()])
        for event in page.object_list
    ]


@org_page(Action.AUDIT_VIEW)
def audit_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    events = AuditEvent.objects.for_actor(request.user, Action.AUDIT_VIEW).filter(organization=membership.organization)
    actions = list(events.order_by("action").values_list("action", flat=True).distinct())
    form = AuditFilterForm(request.GET, actions=actions)
    page = None
    if form.is_valid():
        filtered = AuditEventFilter(form.filter_data(), queryset=events)
        if filtered.is_valid():
            page = Paginator(filtered.qs, PER_PAGE).get_page(request.GET.get("page"))
        else:
            for name, texts in filtered.errors.items():
                form.add_error(FILTER_FIELDS.get(name), list(texts))
    filtering = any(request.GET.get(name) for name in form.fields)
    context = {
        "form": form,
        "page": page,
        "rows": rows_of(page) if page is not None else [],
        "filtering": filtering,
    }
    response = render_page(request, "dashboard/audit/log.html", context, fragment="dashboard/audit/_log.html")
    if page is None:
        response.status_code = 400
    return response
