"""What a reader asks of an app's logs (`?lines=&since=&process_type=&source=&search=`), parsed once for
the API, the live tail and the dashboard. A bad value is an Invalid naming its parameter."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from berth.core.errors import Invalid

from .lines import SOURCES
from .store import Filter

DEFAULT_LINES = 100
MAX_LINES = 10_000
MAX_SEARCH_CHARS = 200
# A process type as a release names it (applications/specs.PROCESS_NAME), or `run` for one-off runs.
_PROCESS_TYPE = re.compile(r"^[a-z][a-z0-9]{0,29}\Z")
_DURATION = re.compile(r"^([0-9]{1,6})([smhd])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class LogQuery:
    lines: int = DEFAULT_LINES
    since: datetime | None = None
    where: Filter = field(default_factory=Filter)


def log_query(params: Mapping[str, str]) -> LogQuery:
    """The reader's query from request parameters (absent and empty mean "no filter")."""
    return LogQuery(
        lines=_lines(params.get("lines", "")),
        since=_since(params.get("since", "")),
        where=Filter(
            process_type=_process_type(params.get("process_type", "")),
            source=_source(params.get("source", "")),
            search=_search(params.get("search", "")),
        ),
    )


def _lines(value: str) -> int:
    if not value:
        return DEFAULT_LINES
    if not value.isdigit() or int(value) > MAX_LINES:
        raise Invalid(f"Give a whole number of lines from 0 to {MAX_LINES}.", field="lines")
    return int(value)


def _since(value: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no offset) or a duration back from now: `90s`, `10m`, `2h`, `7d`."""
    if not value:
        return None
    duration = _DURATION.match(value)
    if duration:
        return timezone.now() - timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            "Give an ISO 8601 time (2026-12-06T11:00:00Z) or a duration back from now (30s, 10m, 2h, 7d).",
            field="since",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _process_type(value: str) -> str:
    if value and not _PROCESS_TYPE.match(value):
        raise Invalid("A process type is lowercase letters and digits, starting with a letter.", field="process_type")
    return value


def _source(value: str) -> str:
    if value and value not in SOURCES:
        raise Invalid(f"The source is one of: {', '.join(SOURCES)}.", field="source")
    return value


def _search(value: str) -> str:
    if len(value) > MAX_SEARCH_CHARS:
        raise Invalid(f"Search for at most {MAX_SEARCH_CHARS} characters.", field="search")
    if any(ord(char) < 32 for char in value):
        raise Invalid("Search for printable text: stored lines hold no control characters.", field="search")
    return value
