"""An app's one-off runs (docs/runs.md): the list, a form to start one, and each run with its exit code and
output, followed live while it runs.

The form is read by the API's serializer for the same request and handed to the service the API calls
(`deployments.services.run_create`); a refusal is shown by the field it names. The worker starts the run
after the request.
"""

from typing import cast

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from berth.api.serializers import RunCreateSerializer
from berth.applications.models import App
from berth.core.errors import BerthError
from berth.deployments import services
from berth.deployments.models import Run
from berth.deployments.selectors import run_output
from berth.fleet.models import Size
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action, role_allows

from ..access import actor, app_of, org_page, require
from ..forms import add_refusal, parsed_as_api, typed_int
from ..rendering import render_page

PER_PAGE = 50
REFUSED = 400
# The last lines a run's page shows, and how often it looks again while the run is under way.
OUTPUT_LINES = 500
POLL_SECONDS = 2
TEXT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}


class RunForm(forms.Form):
    """A run as typed; `deployments.services.run_create` holds its rules."""

    command = forms.CharField(
        required=False,
        label="Command",
        help_text="Split into words like a shell would, but run without one: no ; && | or $( ).",
        widget=forms.TextInput(attrs=TEXT),
    )
    size = forms.ChoiceField(required=False, label="Size")
    timeout = forms.CharField(
        required=False,
        label="Timeout (seconds)",
        help_text="It is killed after this long; empty for 30 minutes.",
        widget=forms.TextInput(attrs={**TEXT, "inputmode": "numeric", "class": "narrow"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sizes = list(Size.objects.values_list("name", "is_default"))
        default = next((name for name, is_default in sizes if is_default), "")
        size = cast(forms.ChoiceField, self.fields["size"])
        size.choices = [(name, name) for name, _ in sizes]
        size.initial = default

    def clean_size(self) -> str | None:
        return self.cleaned_data["size"] or None

    def clean_timeout(self) -> int | str | None:
        typed = self.cleaned_data["timeout"]
        return typed_int(typed) if typed.strip() else None


@org_page(Action.APP_VIEW)
def run_list(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """GET: the app's runs, newest first. POST (app.deploy): start one, then show it."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return _list(request, membership, app)
    require(membership, Action.APP_DEPLOY)
    form = RunForm(request.POST)
    data = parsed_as_api(form, RunCreateSerializer)
    if data is not None:
        try:
            run = services.run_create(actor=actor(request), app=app, **data)
        except BerthError as error:
            add_refusal(form, error)
        else:
            return redirect("dashboard:run", membership.organization.slug, app.name, run.pk)
    return _list(request, membership, app, form=form, status=REFUSED)


@org_page(Action.APP_VIEW)
def run_detail(request: HttpRequest, membership: Membership, app_name: str, run_id: int) -> HttpResponse:
    """One run: its state, exit code and last lines; while it is under way the output section asks for
    itself again every POLL_SECONDS (the same URL answers it alone to htmx)."""
    app = app_of(request, membership, app_name)
    run = (
        Run.objects.for_actor(request.user, Action.APP_VIEW)
        .filter(app=app, pk=run_id)
        .select_related("release", "size", "created_by")
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    context = {"app": app, "run": run, "output": run_output(run, lines=OUTPUT_LINES), "poll_seconds": POLL_SECONDS}
    return render_page(request, "dashboard/runs/detail.html", context, fragment="dashboard/runs/_run.html")


def _list(
    request: HttpRequest, membership: Membership, app: App, *, form: RunForm | None = None, status: int = 200
) -> HttpResponse:
    runs = (
        Run.objects.for_actor(request.user, Action.APP_VIEW)
        .filter(app=app)
        .select_related("release", "size", "created_by")
        .order_by("-created_at", "-id")
    )
    page = Paginator(runs, PER_PAGE).get_page(request.GET.get("page"))
    can_run = role_allows(membership.role, Action.APP_DEPLOY) and app.current_release_id is not None
    context = {"app": app, "page": page, "form": form or (RunForm() if can_run else None)}
    return render(request, "dashboard/runs/list.html", context, status=status)
