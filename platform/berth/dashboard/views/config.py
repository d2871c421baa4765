"""An app's config vars: keys with their values hidden until revealed, and a change of several at once.

Revealing goes through `deployments.services.config_reveal`, which records it in the audit log (keys,
never values). A change is parsed by the API's serializer and checked by the service's rule, shown as
a diff, and on confirmation made by `deployments.services.config_set`, the API's service: one release.
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from rest_framework.exceptions import ValidationError

from berth.api.serializers import ConfigUpdateSerializer
from berth.applications.models import App
from berth.core.errors import BerthError
from berth.deployments import services
from berth.deployments.selectors import base_release, config_diff, config_keys
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action, role_allows

from ..access import actor, app_of, org_page, require
from ..forms import add_refusal

FORM_ID = "config-edit"
NEW_ROWS = 3
MAX_NEW_ROWS = 60


class ConfigEditForm(forms.Form):
    """Several config vars changed at once: each existing key may get a new value or be removed, and
    blank rows add keys. Removing is a box of its own to tick, never an emptied field; a new row with an
    existing key changes it (the way to set a value to the empty string)."""

    rows = forms.CharField(widget=forms.HiddenInput, required=False)  # read (and bounded) by _rows_in
    # The keys the form was made for: a change made meanwhile by someone else must be looked at again.
    known = forms.CharField(widget=forms.HiddenInput, required=False, strip=False)

    def __init__(self, *args, keys: list[str], new_rows: int = NEW_ROWS, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = keys
        self.new_rows = _rows_in(self.data, new_rows) if self.is_bound else new_rows
        self.fields["rows"].initial = self.new_rows
        self.fields["known"].initial = ",".join(keys)
        for key in keys:
            self.fields[f"set_{key}"] = _value_field(f"New value for {key}")
            self.fields[f"remove_{key}"] = forms.BooleanField(
                required=False, label=f"Remove {key}", widget=forms.CheckboxInput(attrs={"form": FORM_ID})
            )
        for i in range(self.new_rows):
            self.fields[f"new_key_{i}"] = forms.CharField(
                required=False,
                max_length=100,
                label=f"Key of new row {i + 1}",
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "form": FORM_ID}),
            )
            self.fields[f"new_value_{i}"] = _value_field(f"Value of new row {i + 1}")
        self.changes: dict[str, str | None] = {}
        # For each key changed, the form fields its refusals go next to: (key's field, value's field).
        self.row_of: dict[str, tuple[str, str]] = {}

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        if data.get("known", "") != ",".join(self.keys):
            raise forms.ValidationError("The config vars changed since this page was made: check the change again.")
        for key in self.keys:
            self._existing(key, data.get(f"set_{key}", ""), data.get(f"remove_{key}", False))
        for i in range(self.new_rows):
            self._new(i, (data.get(f"new_key_{i}") or "").strip(), data.get(f"new_value_{i}", ""))
        if not self.changes and not self.errors:
            raise forms.ValidationError("Nothing to change: give a new value, tick Remove, or fill in a new row.")
        return data

    def _existing(self, key: str, value: str, remove: bool) -> None:
        field = f"set_{key}"
        if remove and value:
            self.add_error(field, f"Give {key} a new value or remove it, not both.")
        elif remove or value:
            self.changes[key] = None if remove else value
            self.row_of[key] = (field, field)

    def _new(self, i: int, key: str, value: str) -> None:
        key_field, value_field = f"new_key_{i}", f"new_value_{i}"
        if not key:
            if value:
                self.add_error(key_field, "Give this value a key.")
        elif key in self.changes:
            self.add_error(key_field, f"{key} is changed twice in this form.")
        else:
            self.changes[key] = value
            self.row_of[key] = (key_field, value_field)

    def refusal_fields(self) -> dict[str, str]:
        """Where the API's and the service's refusals go: a key's next to its key, a value's next to it."""
        fields = {}
        for key, (key_field, value_field) in self.row_of.items():
            fields[key] = key_field
            fields[f"config.{key}"] = value_field
        return fields

    def typed(self) -> dict:
        """What was typed, as initial values of a fresh form (a checkbox as a bool, not its text)."""
        return {
            name: field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            for name, field in self.fields.items()
            if name not in ("rows", "known")
        }


def _value_field(label: str) -> forms.CharField:
    # Not stripped here: the API's serializer decides what a value is, and a blank one means "keep".
    return forms.CharField(
        required=False,
        strip=False,
        label=label,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "form": FORM_ID}),
    )


def _rows_in(data, default: int) -> int:
    try:
        return max(0, min(int(data.get("rows", default)), MAX_NEW_ROWS))
    except (TypeError, ValueError):
        return default


@org_page(Action.CONFIG_VIEW)
def config_vars(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """GET: the keys, values hidden. POST (app.deploy): a change, previewed, then made on confirmation."""
    app = app_of(request, membership, app_name)
    keys = config_keys(app)
    if request.method != "POST":
        form = ConfigEditForm(keys=keys) if role_allows(membership.role, Action.APP_DEPLOY) else None
        return _page(request, app, keys, form)
    require(membership, Action.APP_DEPLOY)
    form = ConfigEditForm(request.POST, keys=keys)
    if "more" in request.POST or "edit" in request.POST:
        more = NEW_ROWS if "more" in request.POST else 0
        return _page(request, app, keys, ConfigEditForm(keys=keys, new_rows=form.new_rows + more, initial=form.typed()))
    if not _checked(form):
        return _page(request, app, keys, form, status=400)
    if request.POST.get("confirm") != "yes":
        return _preview(request, app, keys, form)
    try:
        release, _ = services.config_set(actor=actor(request), app=app, values=form.changes)
    except BerthError as error:
        add_refusal(form, error, fields=form.refusal_fields())
        return _page(request, app, keys, form, status=400)
    saved = ", ".join(f"{k} {'removed' if v is None else 'set'}" for k, v in form.changes.items())
    deploy = f"release v{release.version} is being deployed" if release else "the first release will use it"
    messages.success(request, f"Config saved ({saved}): {deploy}.")
    return redirect("dashboard:config", membership.organization.slug, app.name)


@org_page(Action.CONFIG_VIEW)
def config_reveal(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """POST: the config page with one value (`key`) or all of them shown, recorded in the audit log.
    A GET reveals nothing: it is the masked page again."""
    app = app_of(request, membership, app_name)
    if request.method != "POST":
        return redirect("dashboard:config", membership.organization.slug, app.name)
    key = request.POST.get("key", "")
    revealed = services.config_reveal(actor=actor(request), app=app, keys=[key] if key else None)
    keys = config_keys(app)
    form = ConfigEditForm(keys=keys) if role_allows(membership.role, Action.APP_DEPLOY) else None
    return _page(request, app, keys, form, revealed=revealed)


def _checked(form: ConfigEditForm) -> bool:
    """The form's own checks, then the API's: its serializer parses the values (so they are what the
    API would store), and the service's rule checks each key, refusals next to their row."""
    if not form.is_valid():
        return False
    fields = form.refusal_fields()
    parsed = ConfigUpdateSerializer(data={"config": form.changes})
    if not parsed.is_valid():
        add_refusal(form, ValidationError(parsed.errors), fields=fields)
        return False
    form.changes = parsed.validated_data["config"]
    for key, value in form.changes.items():
        try:
            services.config_validate({key: value})
        except BerthError as error:
            add_refusal(form, error, fields=fields)
    if form.errors:
        return False
    try:
        services.config_validate(form.changes)
    except BerthError as error:
        add_refusal(form, error, fields=fields)
        return False
    return True


def _page(
    request: HttpRequest,
    app: App,
    keys: list[str],
    form: ConfigEditForm | None,
    *,
    revealed: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    revealed = revealed or {}
    rows = [
        {
            "key": key,
            "revealed": key in revealed,
            "value": revealed.get(key, ""),
            "set": form[f"set_{key}"] if form else None,
            "remove": form[f"remove_{key}"] if form else None,
        }
        for key in keys
    ]
    new_rows = [(form[f"new_key_{i}"], form[f"new_value_{i}"]) for i in range(form.new_rows)] if form else []
    context = {
        "app": app,
        "rows": rows,
        "new_rows": new_rows,
        "form": form,
        "form_id": FORM_ID,
        "revealed": revealed,
    }
    return _private(render(request, "dashboard/config/vars.html", context, status=status))


def _preview(request: HttpRequest, app: App, keys: list[str], form: ConfigEditForm) -> HttpResponse:
    """The change as a diff: added and changed keys with the values just typed, removed keys by name."""
    diff = config_diff(keys, form.changes)
    context = {
        "app": app,
        "form": form,
        "added": [(key, form.changes[key]) for key in diff.added],
        "changed": [(key, form.changes[key]) for key in diff.changed],
        "removed": diff.removed,
        "base": base_release(app),
    }
    return _private(render(request, "dashboard/config/preview.html", context))


def _private(response: HttpResponse) -> HttpResponse:
    """Config pages may hold values (revealed or just typed): no cache keeps them."""
    add_never_cache_headers(response)
    return response
