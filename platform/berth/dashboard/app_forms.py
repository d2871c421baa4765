"""The forms of an app's pages: deploying a release and changing the formation.

They only parse what was typed into the shapes the API takes (a release's image and process types, a
formation change); the rules are the API serializers' and `applications.specs`'. A refusal names an
API field ("process_types.web.port", "formation.web.quantity", "web.size"); `place_*` put it next to
the input it is about.
"""

import shlex
from collections.abc import Iterable
from typing import Any, cast

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from berth.api.serializers import FormationChangeSerializer
from berth.applications.specs import HEALTH_TYPES
from berth.core.errors import BerthError
from berth.fleet.models import Size

from .forms import add_refusal

# --- deploy -----------------------------------------------------------------------------------------

TEXT = {"autocomplete": "off", "spellcheck": "false"}
HEALTH_CHOICES = [(kind, kind) for kind in sorted(HEALTH_TYPES)]


class DeployForm(forms.Form):
    """A new release: the image and a description (process types are rows of ProcessTypeForm)."""

    image = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs=TEXT),
        help_text="As Docker names it: registry.example.com/team/app:1.2, or app@sha256:…",
    )
    description = forms.CharField(
        required=False, label="Description (optional)", help_text="What changed, shown in the release list."
    )


class ProcessTypeForm(forms.Form):
    """One process type of the release. Blank fields take the defaults of `applications.specs`."""

    name = forms.CharField(required=False, widget=forms.TextInput(attrs=TEXT), help_text="Such as web or worker.")
    command = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs=TEXT),
        help_text="Split into words as a shell would; no shell runs it. Blank: the image's own.",
    )
    port = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={**TEXT, "inputmode": "numeric"}),
        help_text="Where it listens. Blank: 8080 for web, none for the others.",
    )
    health_type = forms.CharField(
        required=False,
        label="Health check",
        widget=forms.Select(choices=[("", "Default (tcp with a port, else none)"), *HEALTH_CHOICES]),
    )
    health_path = forms.CharField(
        required=False, label="Health check path", widget=forms.TextInput(attrs=TEXT), help_text="For http: /health."
    )
    # The rest of the spec, so that a redeploy prefilled from a release keeps all of it.
    health_command = forms.CharField(
        required=False, label="Health check command", widget=forms.TextInput(attrs=TEXT), help_text="For command."
    )
    expected_status = forms.CharField(required=False, label="Expected HTTP status")
    interval_s = forms.CharField(required=False, label="Check interval (s)")
    timeout_s = forms.CharField(required=False, label="Check timeout (s)")
    retries = forms.CharField(required=False, label="Failures before unhealthy")
    start_period_s = forms.CharField(required=False, label="Start period (s)")
    min_ready_s = forms.CharField(
        required=False, label="Ready after (s)", help_text="How long a new container stays healthy before it serves."
    )
    read_only = forms.BooleanField(required=False, label="Read-only filesystem (writable /tmp)")

    ADVANCED = (
        "health_command",
        "expected_status",
        "interval_s",
        "timeout_s",
        "retries",
        "start_period_s",
        "min_ready_s",
        "read_only",
    )
    HEALTH_NUMBERS = ("expected_status", "interval_s", "timeout_s", "retries", "start_period_s")
    # What a refusal of `applications.specs` names after "process_types.<name>", and the input it is about.
    SPEC_FIELDS = {
        "": "name",
        "command": "command",
        "port": "port",
        "health_check": "health_type",
        "health_check.type": "health_type",
        "health_check.path": "health_path",
        "health_check.command": "health_command",
        **{f"health_check.{key}": key for key in HEALTH_NUMBERS},
        "min_ready_s": "min_ready_s",
        "read_only": "read_only",
    }

    def typed(self, key: str) -> str:
        return (self.cleaned_data.get(key) or "").strip() if key != "read_only" else ""

    def is_blank(self) -> bool:
        return not any(self.typed(key) for key in self.fields) and not self.cleaned_data.get("read_only")

    def spec(self) -> dict[str, Any]:
        """The process type as the API takes it; only what was typed, so the spec's defaults apply."""
        spec: dict[str, Any] = {}
        if self.typed("command"):
            spec["command"] = self.typed("command")
        if self.typed("port"):
            spec["port"] = _number(self.typed("port"))
        health: dict[str, Any] = {}
        if self.typed("health_type"):
            health["type"] = self.typed("health_type")
        if self.typed("health_path"):
            health["path"] = self.typed("health_path")
        if self.typed("health_command"):
            health["command"] = self.typed("health_command")
        health.update({key: _number(self.typed(key)) for key in self.HEALTH_NUMBERS if self.typed(key)})
        if health:
            spec["health_check"] = health
        if self.typed("min_ready_s"):
            spec["min_ready_s"] = _number(self.typed("min_ready_s"))
        if self.cleaned_data.get("read_only"):
            spec["read_only"] = True
        return spec

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.ADVANCED]

    def basic_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.ADVANCED]

    def has_advanced_errors(self) -> bool:
        return any(self[name].errors for name in self.ADVANCED)


def _number(text: str) -> int | float | str:
    """A number typed into a form, as JSON would carry it; anything else stays text, for the spec to refuse."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# The rows rendered; the spec allows 10 process types, a few more let it say so.
MAX_ROWS = 12
ProcessTypeFormSet = forms.formset_factory(ProcessTypeForm, extra=0, max_num=MAX_ROWS, absolute_max=MAX_ROWS)


def rows_from_release(stored: dict[str, dict]) -> list[dict[str, Any]]:
    """Initial rows from a release's stored process types, every setting of the spec filled in."""
    rows = []
    for name, spec in stored.items():
        health = spec.get("health", {})
        rows.append(
            {
                "name": name,
                "command": shlex.join(spec.get("command", [])),
                "port": "" if spec.get("port") is None else spec["port"],
                "health_type": health.get("type", ""),
                "health_path": health.get("path", ""),
                "health_command": shlex.join(health.get("command", [])),
                **{key: _shown(health[key]) for key in ProcessTypeForm.HEALTH_NUMBERS if key in health},
                "min_ready_s": _shown(spec["min_ready_s"]) if "min_ready_s" in spec else "",
                "read_only": bool(spec.get("read_only", False)),
            }
        )
    return rows


def _shown(value: float | int) -> str:
    return f"{value:g}"


def process_types_of(rows: Iterable[ProcessTypeForm]) -> dict[str, dict] | None:
    """{name: spec} of the rows that are not blank; None when all are (the API's default: one web).
    A name typed twice is refused on the second row (a release has one spec per name)."""
    specs: dict[str, dict] = {}
    for row in rows:
        if row.is_blank():
            continue
        name = row.typed("name")
        if name in specs:
            row.add_error("name", f"Another process type above is named {name}; give each its own name.")
            continue
        specs[name] = row.spec()
    return specs or None


def place_spec_refusal(form: DeployForm, rows: list[ProcessTypeForm], error: BerthError) -> None:
    """Put a refusal of `applications.specs` ("process_types.web.port") next to the row's input;
    one about the process types as a whole goes above the form."""
    field = error.field or ""
    for row in sorted(rows, key=lambda r: len(r.typed("name")), reverse=True):  # "web2" before "web"
        prefix = f"process_types.{row.typed('name')}"
        if field == prefix or field.startswith(prefix + "."):
            suffix = field[len(prefix) + 1 :]
            add_refusal(row, error, fields={field: ProcessTypeForm.SPEC_FIELDS.get(suffix, "name")})
            return
    add_refusal(form, error)


# --- formation --------------------------------------------------------------------------------------

# The bounds the API's serializer enforces, offered to the browser as the input's min and max.
QUANTITY = cast(serializers.IntegerField, FormationChangeSerializer().fields["quantity"])


class FormationForm(forms.Form):
    """Quantity and size of each process type of the target release, one form for all of them, as the
    API's formation PATCH takes them. Only what differs from the formation is sent as the change."""

    def __init__(self, processes: dict[str, dict], sizes: Iterable[Size], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.processes = processes
        choices = [(size.name, str(size)) for size in sizes]
        for name, process in processes.items():
            self.fields[f"quantity-{name}"] = forms.CharField(
                required=False,
                label=f"Quantity of {name}",
                initial=process["quantity"],
                widget=forms.NumberInput(
                    attrs={"min": QUANTITY.min_value, "max": QUANTITY.max_value, "class": "narrow"}
                ),
            )
            self.fields[f"size-{name}"] = forms.CharField(
                required=False, label=f"Size of {name}", initial=process["size"], widget=forms.Select(choices=choices)
            )

    def rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [(name, self[f"quantity-{name}"], self[f"size-{name}"]) for name in self.processes]

    def changes(self) -> dict[str, dict[str, str]]:
        """{process type: {"quantity": typed, "size": typed}} of what differs from the formation."""
        changes: dict[str, dict[str, str]] = {}
        for name, process in self.processes.items():
            for key in ("quantity", "size"):
                typed = self.data.get(f"{key}-{name}")
                if typed is not None and typed.strip() != str(process[key]):
                    changes.setdefault(name, {})[key] = typed.strip()
        return changes

    def place_refusal(self, error: BerthError | ValidationError) -> None:
        """Refusals name "formation.web.quantity" (the serializer) or "web" and "web.size" (the service)."""
        fields = {}
        for name in self.processes:
            fields.update(
                {
                    f"formation.{name}": f"quantity-{name}",
                    f"formation.{name}.quantity": f"quantity-{name}",
                    f"formation.{name}.size": f"size-{name}",
                    name: f"quantity-{name}",
                    f"{name}.quantity": f"quantity-{name}",
                    f"{name}.size": f"size-{name}",
                }
            )
        add_refusal(self, error, fields=fields)
