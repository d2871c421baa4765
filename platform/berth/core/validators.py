"""Validators for names that end up in URLs, DNS labels and container names."""

import re

from django.core.validators import RegexValidator

SLUG_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\Z"
SLUG_MESSAGE = "Use lowercase letters, digits and single hyphens; start with a letter and do not end with a hyphen."

slug_validator = RegexValidator(SLUG_PATTERN, SLUG_MESSAGE, code="invalid_slug")

_SLUG_RE = re.compile(SLUG_PATTERN)


def is_slug(value: str) -> bool:
    """Whether `value` could be an organization's slug; anything else is a 404 without a query."""
    return len(value) <= 40 and bool(_SLUG_RE.match(value))
