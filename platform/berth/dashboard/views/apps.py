"""An app's pages: its overview, followed live while it deploys; deploying a release; scaling it;
promoting or aborting its canary.

The overview and its live update read through selectors a fixed number of queries, whatever the number
of containers and deployments (docs/dashboard.md#app-overview-and-deploys). Deploys and scales parse
the form into what the API takes, with the API's serializers, and call the same services: the worker
does the work, the page follows it.
"""

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_safe
from rest_framework.exceptions import ValidationError

from berth.api.serializers import AppCreateSerializer, FormationUpdateSerializer, ReleaseCreateSerializer
from berth.applications import services as app_services
from berth.applications.models import App, Release
from berth.applications.specs import parse_process_types
from berth.core.errors import BerthError
from berth.deployments import services
from berth.deployments.models import Deployment
from berth.deployments.selectors import (
    ACTIVITY_PAGE,
    ReleaseShown,
    app_state,
    base_release,
    deployments_page,
    releases_shown,
)
from berth.fleet.models import Size
from berth.fleet.selectors import app_live_containers
from berth.routing.selectors import app_addresses
from berth.tenancy.models import Membership, User
from berth.tenancy.roles import Action

from ..access import app_of, org_page
from ..app_forms import (
    DeployForm,
    FormationForm,
    ProcessTypeFormSet,
    place_spec_refusal,
    process_types_of,
    rows_from_release,
)
from ..forms import add_refusal, parsed_as_api
from ..rendering import render_page, wants_fragment

# How often an open overview asks for its live parts: while a deployment is queued or running, and
# otherwise (a crash makes Berth start a heal deployment, which the slow poll notices).
POLL_DEPLOYING_SECONDS = 2
POLL_IDLE_SECONDS = 30
# Sent by the overview's poll: the deployments whose folded steps the page holds (app_live).
HELD_STEPS_HEADER = "X-Berth-Held-Steps"
REFUSED = 400
# Hostnames the overview lists beside the app's own; the Domains tab has them all.
OVERVIEW_DOMAINS = 3


# --- overview and its live update -------------------------------------------------------------------


@org_page(Action.APP_VIEW)
@require_safe
def app_overview(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """The app: its release, where it is going, its formation, containers and deployments."""
    app = app_of(request, membership, app_name)
    return render(request, "dashboard/apps/overview.html", overview_context(request, app))


@org_page(Action.APP_VIEW)
@require_safe
def app_live(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """The overview's live parts for its poll (state, containers, activity); the whole overview without htmx.

    The poll says which deployments' folded steps its page holds (HELD_STEPS_HEADER, which the state
    section sets from what it was sent with); those of them that succeeded are answered as an empty
    `<details hx-preserve>`, which htmx fills with the page's own: they no longer change, and a rollout
    of 100 containers has 500 steps, read and written out again every poll for nothing."""
    app = app_of(request, membership, app_name)
    held = _held_steps(request) if wants_fragment(request) else frozenset()
    context = overview_context(request, app, held_steps=held)
    response = render_page(request, "dashboard/apps/overview.html", context, fragment="dashboard/apps/_live.html")
    patch_vary_headers(response, [HELD_STEPS_HEADER])
    return response


def _held_steps(request: HttpRequest) -> frozenset[int]:
    """The deployment ids of HELD_STEPS_HEADER ("12,15,16"); what is not an id is left out."""
    ids = request.headers.get(HELD_STEPS_HEADER, "").split(",")[: 2 * ACTIVITY_PAGE]
    return frozenset(int(i) for i in ids if i.isdigit() and len(i) < 19)


def overview_context(
    request: HttpRequest,
    app: App,
    *,
    formation_form: FormationForm | None = None,
    held_steps: frozenset[int] = frozenset(),
) -> dict:
    """What the overview shows. The formation form (and the sizes it offers) and the app's addresses are
    read only when rendered: the live update does not show them. `held_steps`: deployments whose folded
    steps the page holds."""
    state = app_state(app)
    releases = releases_shown(app, {v for v in (state["release"], state["target_release"]) if v is not None})
    current = releases.get(state["release"])
    target = releases.get(state["target_release"])
    before = _positive_int(request.GET.get("before"))
    deployments, older = deployments_page(actor=_actor(request), app=app, before=before, held=held_steps)
    live_url = reverse("dashboard:app-live", args=[app.organization.slug, app.name])
    return {
        "app": app,
        "state": state,
        "current": current,
        "live_since": current.live_since if current else None,
        "target": target if target is not None and target != current else None,
        "pending": next((d for d in deployments if d.state in Deployment.UNFINISHED), None),
        "processes": _processes(state),
        "canary": _canary(state),
        "containers": app_live_containers(actor=_actor(request), app=app, now=timezone.now()),
        "deployments": deployments,
        # The deployments whose steps this answer folds, for the next poll to say it holds them.
        "folded": ",".join(str(d.id) for d in deployments if d.state == Deployment.State.SUCCEEDED),
        "held_steps_header": HELD_STEPS_HEADER,
        "before": before,
        "older": older,
        "poll_seconds": POLL_DEPLOYING_SECONDS if state["deploying"] else POLL_IDLE_SECONDS,
        "live_url": f"{live_url}?before={before}" if before else live_url,
        "formation_form": formation_form
        or SimpleLazyObject(lambda: _formation_form(app, state, target or base_release(app))),
        "addresses": SimpleLazyObject(lambda: app_addresses(app, domains=OVERVIEW_DOMAINS)),
    }


def _processes(state: dict) -> list[dict[str, Any]]:
    """Per process type: wanted quantity and size, live containers per release, and how many in all."""
    return [
        {"name": name, **process, "live": sum(process["running"].values())}
        for name, process in state["processes"].items()
    ]


def _canary(state: dict) -> dict[str, Any] | None:
    """The active canary (app_state's), with how many of its replicas live of how many it asks for."""
    canary = state["canary"]
    if canary is None:
        return None
    processes = canary["processes"].values()
    return {
        **canary,
        "live": sum(sum(p["running"].values()) for p in processes),
        "quantity": sum(p["quantity"] for p in processes),
    }


def _formation_form(app: App, state: dict, base: Release | ReleaseShown | None, data: Any = None) -> FormationForm:
    """The formation form, for the process types of the release a change builds on (`base_release`): the
    target release, or when nothing runs or deploys (the first release failed), the newest one."""
    process_types = base.process_types if base is not None else {}
    processes = {name: p for name, p in state["processes"].items() if name in process_types}
    if len(processes) < len(process_types):  # not the target release: app_state leaves its formation out
        formation = app.formation.select_related("size").filter(process_type__in=list(process_types))
        processes = {f.process_type: {"quantity": f.quantity, "size": f.size.name} for f in formation}
    return FormationForm(processes, Size.objects.order_by("memory_mb", "name"), data=data)


def _actor(request: HttpRequest) -> User:
    """The signed-in person: `org_page` sent anyone else to the sign-in page."""
    return cast(User, request.user)


def _positive_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and 0 < int(text) < 2**63 else None


# --- deploy -----------------------------------------------------------------------------------------


@org_page(Action.APP_DEPLOY)
def deploy(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """A new release from an image and process types, deployed by the worker; prefilled from the target
    release, so that deploying a new image of the same app is one field."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return _deploy_page(request, app, *_deploy_forms_for(app))
    form, rows = DeployForm(request.POST), ProcessTypeFormSet(request.POST, prefix="process")
    if "add" in request.POST:  # another row, without JavaScript: the same page with one more
        more = request.POST.copy()
        more["process-TOTAL_FORMS"] = str(min(rows.total_form_count() + 1, rows.absolute_max))
        return _deploy_page(request, app, DeployForm(request.POST), ProcessTypeFormSet(more, prefix="process"))
    form.is_valid()
    if not rows.is_valid():
        return _deploy_page(request, app, form, rows, status=REFUSED)
    data: dict[str, Any] = {"image": form.cleaned_data["image"], "description": form.cleaned_data["description"]}
    process_types = process_types_of(rows.forms)
    if any(row.errors for row in rows.forms):
        return _deploy_page(request, app, form, rows, status=REFUSED)
    if process_types is not None:  # none at all: the API's default, as when its body leaves them out
        data["process_types"] = process_types
    parsed = ReleaseCreateSerializer(data=data)
    if not parsed.is_valid():
        add_refusal(form, ValidationError(parsed.errors))
    try:  # the specs' refusal beside the image's, so one submit shows both
        parse_process_types(process_types)
    except BerthError as error:
        place_spec_refusal(form, rows.forms, error)
    if form.errors or any(row.errors for row in rows.forms):
        return _deploy_page(request, app, form, rows, status=REFUSED)
    try:
        release, _ = services.release_create(actor=_actor(request), app=app, **parsed.validated_data)
    except BerthError as error:
        place_spec_refusal(form, rows.forms, error)
        return _deploy_page(request, app, form, rows, status=REFUSED)
    messages.success(request, f"Release v{release.version} ({release.image}) is deploying.")
    return redirect("dashboard:app", app.organization.slug, app.name)


def _deploy_forms_for(app: App) -> tuple[DeployForm, Any]:
    """Prefilled from the release a change builds on (the target release; the newest, if the first failed);
    with none, one web row."""
    base = base_release(app)
    if base is None:
        initial_rows = [{"name": "web", "port": 8080}]
        return DeployForm(), ProcessTypeFormSet(initial=initial_rows, prefix="process")
    form = DeployForm(initial={"image": base.image})
    return form, ProcessTypeFormSet(initial=rows_from_release(base.process_types), prefix="process")


def _deploy_page(request: HttpRequest, app: App, form: DeployForm, rows: Any, *, status: int = 200) -> HttpResponse:
    context = {"app": app, "form": form, "rows": rows, "can_add": rows.total_form_count() < rows.absolute_max}
    return render(request, "dashboard/apps/deploy.html", context, status=status)


# --- scale ------------------------------------------------------------------------------------------


@org_page(Action.APP_DEPLOY)
def formation_scale(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """Change quantity and size per process type, as the API's formation PATCH does; scaling a process
    type to 0 is confirmed on a page of its own first. A GET (a reloaded answer) goes to the overview."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return redirect("dashboard:app", app.organization.slug, app.name)
    form = _formation_form(app, app_state(app), base_release(app), data=request.POST)
    changes = form.changes()
    if not changes:
        messages.info(request, "The formation already is what the form says; nothing changed.")
        return redirect("dashboard:app", app.organization.slug, app.name)
    parsed = FormationUpdateSerializer(data={"formation": changes})
    if not parsed.is_valid():
        return _scale_refused(request, app, form, ValidationError(parsed.errors))
    wanted = parsed.validated_data["formation"]
    stopping = sorted(name for name, change in wanted.items() if change.get("quantity") == 0)
    if stopping and request.POST.get("confirm") != "yes":
        context = {"app": app, "stopping": stopping, "fields": _posted_fields(request, form)}
        return render(request, "dashboard/apps/scale_confirm.html", context)
    try:
        deployment = services.formation_scale(actor=_actor(request), app=app, changes=wanted)
    except BerthError as error:
        return _scale_refused(request, app, form, error)
    summary = ", ".join(f"{name} {_change_text(change)}" for name, change in sorted(wanted.items()))
    if deployment is None:
        messages.success(request, f"Formation saved ({summary}); the first release will run with it.")
    else:
        messages.success(request, f"Scaling {summary}.")
    return redirect("dashboard:app", app.organization.slug, app.name)


def _scale_refused(
    request: HttpRequest, app: App, form: FormationForm, error: BerthError | ValidationError
) -> HttpResponse:
    """The overview again, the form as typed with the refusal beside the field it names."""
    form.place_refusal(error)
    context = overview_context(request, app, formation_form=form)
    return render(request, "dashboard/apps/overview.html", context, status=REFUSED)


def _posted_fields(request: HttpRequest, form: FormationForm) -> list[tuple[str, str]]:
    """The formation fields as posted, carried through the confirm step unchanged."""
    return [(name, request.POST[name]) for name in form.fields if name in request.POST]


def _change_text(change: dict) -> str:
    parts = ([f"to {change['quantity']}"] if "quantity" in change else []) + (
        [f"at size {change['size']}"] if "size" in change else []
    )
    return " ".join(parts)


# --- create and delete ------------------------------------------------------------------------------


class AppForm(forms.Form):
    """A new app's name and description as typed; the API's AppCreateSerializer validates them."""

    name = forms.CharField(
        label="Name",
        help_text="Lowercase letters, digits and hyphens, up to 30 characters. It is part of the app's "
        "URLs and container names, and cannot change.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}),
    )
    description = forms.CharField(
        label="Description", required=False, help_text="Optional.", widget=forms.Textarea(attrs={"rows": 3})
    )


@org_page(Action.APP_CREATE)
def app_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """`/orgs/<slug>/apps/new/`: create an app through the service the API calls (quota, unique name)."""
    form = AppForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and (data := parsed_as_api(form, AppCreateSerializer)) is not None:
        try:
            app = app_services.app_create(actor=cast(User, request.user), organization=membership.organization, **data)
        except BerthError as error:
            add_refusal(form, error)
        else:
            messages.success(request, f"Created the app {app.name}.")
            return redirect("dashboard:org-home", membership.organization.slug)
    response = render_page(request, "dashboard/apps/create.html", {"form": form})
    if form.is_bound:
        response.status_code = 400  # only a refused form is shown again after a POST
    return response


class AppDeleteForm(forms.Form):
    """Deleting an app asks for its name, typed: a server-side confirmation that works without JavaScript."""

    confirm = forms.CharField(
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"})
    )

    def __init__(self, *args, app: App, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self.fields["confirm"].label = f"Type the app's name, {app.name}, to delete it"

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"]
        if typed != self.app.name:
            raise forms.ValidationError(f"This is not the app's name ({self.app.name}); nothing was deleted.")
        return typed


@org_page(Action.APP_DELETE)
def app_delete(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """`/orgs/<slug>/apps/<name>/delete/`: a confirmation page; its POST with the app's name typed deletes it."""
    app = app_of(request, membership, app_name)
    form = AppDeleteForm(request.POST if request.method == "POST" else None, app=app)
    if request.method == "POST" and form.is_valid():
        app_services.app_delete(actor=cast(User, request.user), app=app)
        messages.success(request, f"Deleted the app {app_name}; its containers are being removed.")
        return redirect("dashboard:org-home", membership.organization.slug)
    response = render_page(request, "dashboard/apps/delete.html", {"app": app, "form": form})
    if form.is_bound:
        response.status_code = 400
    return response


# --- canary -----------------------------------------------------------------------------------------


@org_page(Action.APP_DEPLOY)
def canary_promote(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """GET: what promoting the canary does, with the button. POST: promote it, as the API does."""
    return _canary_change(request, membership, app_name, promote=True)


@org_page(Action.APP_DEPLOY)
def canary_abort(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """GET: what aborting the canary does, with the button. POST: abort it, as the API does."""
    return _canary_change(request, membership, app_name, promote=False)


def _canary_change(request: HttpRequest, membership: Membership, app_name: str, *, promote: bool) -> HttpResponse:
    app = app_of(request, membership, app_name)
    canary = _canary(app_state(app))
    if canary is None:  # ended meanwhile (promoted or aborted by someone else, or by Berth)
        messages.info(request, "The app has no canary (any more).")
        return redirect("dashboard:app", app.organization.slug, app.name)
    error = ""
    if request.method == "POST":
        change = services.canary_promote if promote else services.canary_abort
        try:
            change(actor=_actor(request), app=app)
        except BerthError as refused:
            error = refused.message
        else:
            done = "is being promoted: it becomes the app's release" if promote else "is being aborted"
            messages.success(request, f"The canary v{canary['release']} {done}.")
            return redirect("dashboard:app", app.organization.slug, app.name)
    context = {"app": app, "canary": canary, "promote": promote, "error": error}
    return render(request, "dashboard/apps/canary_confirm.html", context, status=REFUSED if error else 200)
