"""Not built yet."""

from typing import cast

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from berth.api.serializers import AppCreateSerializer
from berth.applications import services as app_services
from berth.applications.models import App
from berth.core.errors import BerthError
from berth.tenancy.models import Membership, User
from berth.tenancy.roles import Action

from ..access import app_of, org_page
from ..forms import add_refusal, parsed_as_api
from ..rendering import render_page


def app_overview(request, *args, **kwargs):
    raise Http404


def app_live(request, *args, **kwargs):
    raise Http404


def deploy(request, *args, **kwargs):
    raise Http404


def formation_scale(request, *args, **kwargs):
    raise Http404


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
