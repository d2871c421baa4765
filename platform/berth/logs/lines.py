"""One log line as Berth keeps it, and how raw container output becomes one (docs/logs.md).

Nothing a container prints may break the store, the collector or a log view: a line is decoded as
UTF-8 with undecodable bytes escaped (`\\xff`), control characters other than tab are escaped the same
way, and a line longer than MAX_LINE_CHARS is cut with a marker that says how much was dropped.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

# An app's line: `app[web.1]`. Berth's own lines about the app: `berth[deploy]`, `berth[router]`, …
APP = "app"
BERTH = "berth"
SOURCES = (APP, BERTH)
STDOUT = "stdout"
STDERR = "stderr"

MAX_LINE_CHARS = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def clean(raw: bytes | str) -> str:
    """Printable text for one line: escaped, never longer than MAX_LINE_CHARS plus the marker."""
    text = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    if len(text) > MAX_LINE_CHARS:
        cut = len(text) - MAX_LINE_CHARS
        text = f"{text[:MAX_LINE_CHARS]} [line cut: {cut} more characters]"
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def ns_of(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly, for an aware datetime (microsecond precision)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def time_of(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


@dataclass(frozen=True)
class LogLine:
    """`id` is the store's (a Redis stream entry id, "<ms>-<seq>"): the order lines arrived in, which is
    each container's own order. `time` is when the line was printed (Docker's timestamp)."""

    id: str
    ns: int
    source: str  # APP or BERTH
    process: str  # "web.1" for an app's container, "deploy", "router", "run.12", … for Berth
    process_type: str  # "web" for both app[web.1] and Berth's lines about web; "" when about the whole app
    stream: str  # STDOUT or STDERR
    text: str

    @property
    def time(self) -> datetime:
        return time_of(self.ns)

    def formatted(self) -> str:
        """Heroku's shape: `2026-12-06T11:24:12.123456Z app[web.1]: listening on 8080`."""
        stamp = self.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{stamp} {self.source}[{self.process}]: {self.text}"

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "source": self.source,
            "process": self.process,
            "process_type": self.process_type,
            "stream": self.stream,
            "line": self.text,
        }
