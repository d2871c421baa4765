"""An app's hostnames and how it is routed: the one Berth gives it and those its tenant added, with their URLs;
adding one, removing one after a confirm, and the routing settings (HTTPS only, drain timeout).

Each form is read by the API's serializer for the same request and handed to the service the API calls
(`routing.services`: `domain_add`, `domain_remove_hostname`, `app_routing_update`); a refusal is shown by
the field it names. The worker changes the routers after the request.
"""

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from berth.api.serializers import AppUpdateSerializer, DomainCreateSerializer
from berth.applications.models import App
from berth.core.errors import BerthError, NotFound
from berth.routing import services
from berth.routing.hostnames import default_hostname
from berth.routing.models import Domain
from berth.routing.selectors import app_urls, hostname_urls, public_ports
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action, role_allows

from ..access import actor, app_of, org_page, require
from ..forms import add_refusal, parsed_as_api, typed_int

PER_PAGE = 50
REFUSED = 400
TEXT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}


class DomainForm(forms.Form):
    """A hostname to add, as typed; `routing.services.domain_add` decides whether it may be the app's."""

    hostname = forms.CharField(
        required=False,
        label="Hostname",
        help_text="Such as www.example.com: no scheme, port or wildcard. Point its DNS at the routers.",
        widget=forms.TextInput(attrs=TEXT),
    )


class RoutingForm(forms.Form):
    """The app's routing settings as typed; `routing.services.app_routing_update` holds their rules."""

    https_only = forms.BooleanField(required=False, label="Redirect HTTP to HTTPS")
    drain_timeout_s = forms.CharField(
        label="Drain timeout (seconds)",
        help_text="How long a replica leaving the routes may finish the requests it has before it is stopped anyway.",
        widget=forms.TextInput(attrs={**TEXT, "inputmode": "numeric", "class": "narrow"}),
    )

    def clean_drain_timeout_s(self) -> int | str:
        return typed_int(self.cleaned_data["drain_timeout_s"])


@org_page(Action.APP_VIEW)
def domain_list(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """GET: the app's hostnames and routing settings. POST (domain.manage): add a hostname."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return _page(request, membership, app)
    require(membership, Action.DOMAIN_MANAGE)
    form = DomainForm(request.POST)
    data = parsed_as_api(form, DomainCreateSerializer)
    if data is not None:
        try:
            domain = services.domain_add(actor=actor(request), app=app, hostname=data["hostname"])
        except BerthError as error:
            add_refusal(form, error)
        else:
            messages.success(
                request, f"Added {domain.hostname}: the routers send it to {app.name} once its DNS points at them."
            )
            return redirect("dashboard:domains", membership.organization.slug, app.name)
    return _page(request, membership, app, domain_form=form, status=REFUSED)


@org_page(Action.DOMAIN_MANAGE)
def domain_remove(request: HttpRequest, membership: Membership, app_name: str, hostname: str) -> HttpResponse:
    """GET: what removing the hostname does, with the button. POST: remove it, as the API's DELETE does."""
    app = app_of(request, membership, app_name)
    domain = (
        Domain.objects.for_actor(request.user, Action.APP_VIEW)
        .filter(app=app, hostname=services.normalize_hostname(hostname))
        .first()
    )
    if domain is None:
        raise Http404("No such domain.")
    if request.method != "POST":
        return render(request, "dashboard/domains/remove.html", {"app": app, "domain": domain})
    try:
        services.domain_remove_hostname(actor=actor(request), app=app, hostname=domain.hostname)
    except NotFound:  # removed meanwhile
        raise Http404("No such domain.") from None
    messages.success(request, f"Removed {domain.hostname}: the routers answer it with their 404 within seconds.")
    return redirect("dashboard:domains", membership.organization.slug, app.name)


@org_page(Action.APP_UPDATE)
def routing_update(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """POST: the routing settings, as the API's PATCH of the app takes them. A GET shows the Domains page."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return redirect("dashboard:domains", membership.organization.slug, app.name)
    form = RoutingForm(request.POST)
    data = parsed_as_api(form, AppUpdateSerializer)
    if data is not None:
        try:
            services.app_routing_update(actor=actor(request), app=app, **data)
        except BerthError as error:
            add_refusal(form, error)
        else:
            https = "plain HTTP is redirected to HTTPS" if app.https_only else "HTTP and HTTPS both serve"
            messages.success(request, f"Routing saved: {https}, drain timeout {app.drain_timeout_s} s.")
            return redirect("dashboard:domains", membership.organization.slug, app.name)
    # What was saved is shown as it is, not as the refused form typed it.
    app.refresh_from_db(fields=["https_only", "drain_timeout_s"])
    return _page(request, membership, app, routing_form=form, status=REFUSED)


def _page(
    request: HttpRequest,
    membership: Membership,
    app: App,
    *,
    domain_form: DomainForm | None = None,
    routing_form: RoutingForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The Domains tab: the app's own hostname, a page of those added (by name), and the
    forms the member's role may use."""
    ports = public_ports()
    domains = (
        Domain.objects.for_actor(request.user, Action.APP_VIEW)
        .filter(app=app)
        .select_related("created_by")
        .order_by("hostname")
    )
    page = Paginator(domains, PER_PAGE).get_page(request.GET.get("page"))
    rows = [{"domain": domain, "urls": hostname_urls(domain.hostname, ports)} for domain in page]
    role = membership.role
    context: dict[str, Any] = {
        "app": app,
        "hostname": default_hostname(app.name, app.organization.slug),
        "urls": app_urls(app, ports),
        "rows": rows,
        "page": page,
        "domain_form": domain_form or (DomainForm() if role_allows(role, Action.DOMAIN_MANAGE) else None),
        "routing_form": routing_form
        or (
            RoutingForm(initial={"https_only": app.https_only, "drain_timeout_s": app.drain_timeout_s})
            if role_allows(role, Action.APP_UPDATE)
            else None
        ),
    }
    return render(request, "dashboard/domains/list.html", context, status=status)
