"""Validators for names that end up in URLs, DNS labels and container names."""

from django.core.validators import RegexValidator

SLUG_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\Z"
SLUG_MESSAGE = "Use lowercase letters, digits and single hyphens; start with a letter and do not end with a hyphen."

slug_validator = RegexValidator(SLUG_PATTERN, SLUG_MESSAGE, code="invalid_slug")
