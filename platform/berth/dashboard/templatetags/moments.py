"""Moments as `<time>` in words ("5 minutes ago", "just now"), cheaply: the app overview shows hundreds
(every container's uptime, every deployment), so this is one filter call each, not an include."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_UNITS = (
    (365 * 86400, "year"),
    (30 * 86400, "month"),
    (7 * 86400, "week"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
)


def _words(seconds: float) -> str | None:
    """The largest whole unit in `seconds` ("3 hours"); None under a minute (or in the future: a host's
    clock may run a little ahead of Berth's)."""
    for size, unit in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return None


def _time(moment: datetime, text: str) -> SafeString:
    # Both parts are Berth's own text (an ISO 8601 moment, a few words): nothing to escape, and
    # format_html's escaping cost more than the rest of the filter.
    return mark_safe(f'<time datetime="{moment.isoformat()}">{text}</time>')  # noqa: S308


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago: "5 minutes ago", "just now"."""
    if moment is None:
        return ""
    words = _words((timezone.now() - moment).total_seconds())
    return _time(moment, f"{words} ago" if words else "just now")


@register.filter
def lasted(moment: datetime | None) -> str:
    """How long since, as an uptime: "10 minutes", "under a minute"."""
    if moment is None:
        return ""
    return _time(moment, _words((timezone.now() - moment).total_seconds()) or "under a minute")
