"""Put a service's refusal next to the field it is about, so a refused form keeps its input."""

from django import forms
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import Serializer

from berth.api.errors import flatten_detail
from berth.core.errors import BerthError


def add_refusal(form: forms.Form, error: BerthError | ValidationError, *, fields: dict[str, str] | None = None) -> None:
    """Add the refusal's messages to `form`: under the field they name (renamed through `fields`, the
    API's field name to the form's), or above the form when the form has no such field."""
    messages = {error.field or "": [error.message]} if isinstance(error, BerthError) else flatten_detail(error.detail)
    for name, texts in messages.items():
        target = (fields or {}).get(name, name)
        for text in texts:
            form.add_error(target if target in form.fields else None, text)


def parsed_as_api(form: forms.Form, serializer_class: type[Serializer]) -> dict | None:
    """What the API's serializer for the same request makes of what was typed, or None with the form's
    own and the serializer's refusals next to their fields: a page validates exactly as the API does.

    The form only carries the input (labels, help, what to show again); its field names are the API's."""
    if not form.is_valid():
        return None
    serializer = serializer_class(data=form.cleaned_data)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    add_refusal(form, ValidationError(serializer.errors))
    return None


def typed_int(typed: str) -> int | str:
    """A number field's text as JSON would carry it: a whole number, or else the text as typed, for the
    API's serializer or the service to refuse by name (a form of its own would say it differently)."""
    try:
        return int(typed.strip())
    except ValueError:
        return typed.strip()
