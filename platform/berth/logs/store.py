"""Each app's log lines, kept in one bounded Redis stream per app (docs/logs.md).

Why Redis Streams: appends are O(1) and trimming by length (`MAXLEN ~`) or age (`MINID ~`) drops
whole radix-tree nodes without blocking writers; readers page backwards (XREVRANGE) or block for new
entries (XREAD), which is a live tail without polling. Figures are in docs/logs.md.

No loss and no doubles: every container's lines are appended together with the container's cursor
(the Docker timestamp of its last stored line) in one script, which skips any line not newer than the
cursor. A follower that restarts reads again from the cursor, a second writer (the flush before a
container is removed) may race it, and each line is still stored once. Docker stamps every line with
a nanosecond clock read, so two lines of one container never share a timestamp.
"""

import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .lines import APP, BERTH, STDOUT, LogLine, clean, ns_of

# How far back `recent` looks for lines that match its filters before it gives up: a bound on the
# work one request can cause, whatever the filters.
MAX_SCAN = 100_000
_SCAN_BATCH = 2_000
CURSOR_TTL_S = 30 * 86400

# KEYS: stream, cursor ("" for Berth's own lines). ARGV: max lines, min id, stream ttl, cursor ttl,
# then six values per line: ns (19 digits, so strings compare as numbers), source, process,
# process type, stream, text.
_APPEND = """
local last = ''
if KEYS[2] ~= '' then last = redis.call('GET', KEYS[2]) or '' end
local stored = 0
for i = 5, #ARGV, 6 do
  local ns = ARGV[i]
  if KEYS[2] == '' or last == '' or ns > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      't', ns, 's', ARGV[i + 1], 'p', ARGV[i + 2], 'pt', ARGV[i + 3], 'fd', ARGV[i + 4], 'l', ARGV[i + 5])
    if KEYS[2] ~= '' then last = ns end
    stored = stored + 1
  end
end
if stored > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  if KEYS[2] ~= '' then redis.call('SET', KEYS[2], last, 'EX', ARGV[4]) end
end
return stored
"""


@dataclass(frozen=True)
class Entry:
    """A line to append: `ns` is when it was printed, in nanoseconds since the epoch."""

    ns: int
    text: str
    source: str = APP
    process: str = ""
    process_type: str = ""
    stream: str = STDOUT


@dataclass(frozen=True)
class Filter:
    process_type: str = ""
    source: str = ""
    search: str = ""
    # One process: `run.12`'s lines and Berth's about it.
    process: str = ""

    def matches(self, line: LogLine) -> bool:
        return (
            (not self.process_type or line.process_type == self.process_type)
            and (not self.process or line.process == self.process)
            and (not self.source or line.source == self.source)
            and (not self.search or self.search.lower() in line.text.lower())
        )


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.BERTH_LOG_REDIS_URL)


def _prefix() -> str:
    # Keyed by database as well, so installations (and test databases) sharing one Redis never mix.
    return f"berth:logs:{connection.settings_dict['NAME']}"


def stream_key(app_id: int) -> str:
    return f"{_prefix()}:app:{app_id}"


def cursor_key(docker_id: str) -> str:
    return f"{_prefix()}:cursor:{docker_id}"


def append(app_id: int, entries: Iterable[Entry], *, docker_id: str = "") -> int:
    """Store lines for one app; with `docker_id`, only those newer than that container's cursor.
    Returns how many were stored."""
    values: list[str | int] = []
    for entry in entries:
        values += [f"{entry.ns:019d}", entry.source, entry.process, entry.process_type, entry.stream, entry.text]
    if not values:
        return 0
    max_age_ms = settings.BERTH_LOG_MAX_AGE_HOURS * 3600 * 1000
    min_id = f"{int(timezone.now().timestamp() * 1000) - max_age_ms}-0"
    keys = [stream_key(app_id), cursor_key(docker_id) if docker_id else ""]
    arguments = [settings.BERTH_LOG_MAX_LINES, min_id, max_age_ms // 1000, CURSOR_TTL_S, *values]
    return int(client().eval(_APPEND, 2, *keys, *arguments))


def cursor(docker_id: str) -> int | None:
    """The Docker timestamp (ns) of the last line stored for this container, if any."""
    value = client().get(cursor_key(docker_id))
    return int(value) if value else None


def say(app_id: int, process: str, text: str, *, process_type: str = "", at: datetime | None = None) -> None:
    """One of Berth's own lines about an app (`berth[deploy]: …`). Never raises: a log line must not
    fail what it describes."""
    entry = Entry(ns_of(at or timezone.now()), clean(text), BERTH, process, process_type)
    with contextlib.suppress(redis.RedisError):
        append(app_id, [entry])


def parsed(batch: Any) -> list[LogLine]:
    """Lines from what XRANGE, XREVRANGE or one stream of XREAD returned."""
    return [parse(entry_id, fields) for entry_id, fields in batch or []]


def parse(entry_id: bytes | str, fields: dict) -> LogLine:
    def get(key: bytes) -> str:
        return fields.get(key, b"").decode()

    return LogLine(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        ns=int(get(b"t") or 0),
        source=get(b"s") or APP,
        process=get(b"p"),
        process_type=get(b"pt"),
        stream=get(b"fd") or STDOUT,
        text=get(b"l"),
    )


def id_at(moment: datetime) -> str:
    """The first stream id at or after a moment (ids begin with the arrival time in milliseconds)."""
    return f"{int(moment.timestamp() * 1000)}-0"


def recent(app_id: int, *, lines: int = 100, since: datetime | None = None, where: Filter = Filter()) -> list[LogLine]:
    """The last `lines` lines that match, oldest first; with `since`, only lines stored from then on."""
    key, found, scanned = stream_key(app_id), list[LogLine](), 0
    high, low = "+", id_at(since) if since else "-"
    while len(found) < lines and scanned < MAX_SCAN:
        batch = parsed(client().xrevrange(key, max=high, min=low, count=_SCAN_BATCH))
        if not batch:
            break
        scanned += len(batch)
        for line in batch:
            if where.matches(line):
                found.append(line)
                if len(found) == lines:
                    break
        high = f"({batch[-1].id}"  # exclusive: continue below the last one read
    found.reverse()
    return found


def after(app_id: int, last_id: str, *, count: int = 1000, where: Filter = Filter()) -> tuple[list[LogLine], str]:
    """Lines stored after `last_id` (at most `count` read), and the id to read after next time."""
    lines = parsed(client().xrange(stream_key(app_id), min=f"({last_id}", max="+", count=count))
    if not lines:
        return [], last_id
    return [line for line in lines if where.matches(line)], lines[-1].id


def first_id(app_id: int) -> str | None:
    """The oldest id still kept for the app (None when nothing is)."""
    batch = parsed(client().xrange(stream_key(app_id), count=1))
    return batch[0].id if batch else None


def last_id(app_id: int) -> str:
    """The newest id stored, "0-0" when nothing is: a tail that starts now reads after it."""
    batch = parsed(client().xrevrange(stream_key(app_id), count=1))
    return batch[0].id if batch else "0-0"


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
