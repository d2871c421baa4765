"""Each app's log lines, kept in one bounded Redis stream per app (docs/logs.md).

Why Redis Streams: appends are O(1) and trimming by length (`MAXLEN ~`) or age (`MINID ~`) drops
whole radix-tree nodes without blocking writers; readers page backwards (XREVRANGE) or block for new
entries (XREAD), which is a live tail without polling. Figures are in docs/logs.md.

No loss and no doubles: every container's lines are appended together with the container's cursor
(per stream, the Docker timestamp of its last stored stdout line and of its last stored stderr line)
in one script, which skips any line not newer than its stream's cursor. A follower that restarts
reads again from `resume_ns` (a little before the older cursor), a second writer (the flush before a
container is removed) may race it, and each line is still stored once. Per stream, not per container:
Docker stamps stdout and stderr in two threads, so a container's log file may hold a stderr line
stamped before the stdout line written ahead of it; within one stream, times only increase.
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

# KEYS: stream, cursor hash ("" for Berth's own lines), epoch (when the store first held a line).
# ARGV: max lines, min id, stream ttl, cursor ttl, then one value per line: ns (19 digits, so strings
# compare as numbers), source, process, process type, stream and text, separated by \x1f (FIELD). One
# value, not six: most of an append's cost in the client is per value sent. The cursor hash holds the
# last stored ns per stream (stdout, stderr).
_APPEND = """
local cursors, changed = {}, {}
local stored = 0
for i = 5, #ARGV do
  local line = ARGV[i]
  local a = string.find(line, '\\31', 1, true)
  local b = string.find(line, '\\31', a + 1, true)
  local c = string.find(line, '\\31', b + 1, true)
  local d = string.find(line, '\\31', c + 1, true)
  local e = string.find(line, '\\31', d + 1, true)
  local ns, fd = string.sub(line, 1, a - 1), string.sub(line, d + 1, e - 1)
  local last = ''
  if KEYS[2] ~= '' then
    if cursors[fd] == nil then cursors[fd] = redis.call('HGET', KEYS[2], fd) or '' end
    last = cursors[fd]
  end
  if last == '' or ns > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      't', ns, 's', string.sub(line, a + 1, b - 1), 'p', string.sub(line, b + 1, c - 1),
      'pt', string.sub(line, c + 1, d - 1), 'fd', fd, 'l', string.sub(line, e + 1))
    if KEYS[2] ~= '' then cursors[fd] = ns; changed[fd] = true end
    stored = stored + 1
  end
end
if stored > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  if KEYS[2] ~= '' then
    for fd, _ in pairs(changed) do redis.call('HSET', KEYS[2], fd, cursors[fd]) end
    redis.call('EXPIRE', KEYS[2], ARGV[4])
  end
  local now = redis.call('TIME')
  redis.call('SET', KEYS[3], now[1] .. string.format('%06d', now[2]), 'NX')
end
return stored
"""
FIELD = "\x1f"
# How far before the older of a container's cursors a resumed read starts: Docker filters a read by
# time (`since`), and a line of a stream with no cursor yet may have been written after a line of the
# other stream that was stamped up to this much later. Lines read twice are skipped by the cursors.
RESUME_MARGIN_NS = 1_000_000_000


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


_DATABASE_OIDS: dict[str, int] = {}


def _prefix() -> str:
    """Keys name the database, so installations (and test databases) sharing one Redis never mix, and by its
    oid too: a database dropped and made again, or restored from a backup, numbers its apps from where it
    was, and its new apps must not find the lines of the apps that had their ids before."""
    name = connection.settings_dict["NAME"]
    if name not in _DATABASE_OIDS:
        with connection.cursor() as cursor:
            cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            _DATABASE_OIDS[name] = cursor.fetchone()[0]
    return f"berth:logs:{name}:{_DATABASE_OIDS[name]}"


def stream_key(app_id: int) -> str:
    return f"{_prefix()}:app:{app_id}"


def cursor_key(docker_id: str) -> str:
    return f"{_prefix()}:cursor:{docker_id}"


def epoch_key() -> str:
    """When this store began to hold lines (µs since the epoch, set once): a Redis that restarted empty has a
    later one, so a reader can tell lines it lost from lines the retention trimmed (docs/logs.md#reading-logs)."""
    return f"{_prefix()}:epoch"


def append(app_id: int, entries: Iterable[Entry], *, docker_id: str = "") -> int:
    """Store lines for one app; with `docker_id`, only those newer than that container's cursor.
    Returns how many were stored."""
    values = []
    for entry in entries:
        fields: tuple[str, ...] = (entry.source, entry.process, entry.process_type, entry.stream, entry.text)
        if any(FIELD in field for field in fields):  # clean() escapes it; text that did not go through clean()
            fields = tuple(clean(field) for field in fields)
        values.append(f"{entry.ns:019d}{FIELD}{FIELD.join(fields)}")
    if not values:
        return 0
    max_age_ms = settings.BERTH_LOG_MAX_AGE_HOURS * 3600 * 1000
    min_id = f"{int(timezone.now().timestamp() * 1000) - max_age_ms}-0"
    keys = [stream_key(app_id), cursor_key(docker_id) if docker_id else "", epoch_key()]
    arguments = [settings.BERTH_LOG_MAX_LINES, min_id, max_age_ms // 1000, CURSOR_TTL_S, *values]
    # The client given at each call: the script object must not keep the one of an earlier setting.
    return int(_append_script()(keys=keys, args=arguments, client=client()))


@functools.cache
def _append_script() -> Any:
    """The append script, sent to Redis by its digest (EVALSHA) rather than whole at every append."""
    return client().register_script(_APPEND)


def cursors(docker_id: str) -> dict[str, int]:
    """The Docker timestamp (ns) of the last line stored for this container, per stream."""
    found: dict[bytes, bytes] = client().hgetall(cursor_key(docker_id))  # type: ignore[assignment]  # sync client
    return {fd.decode(): int(ns) for fd, ns in found.items()}


def cursor(docker_id: str) -> int | None:
    """The Docker timestamp (ns) of the last line stored for this container (its newest stream's), if any."""
    found = cursors(docker_id)
    return max(found.values()) if found else None


def resume_ns(found: dict[str, int]) -> int | None:
    """Where a read of a container's lines starts so that none is missed, given its `cursors`."""
    return min(found.values()) - RESUME_MARGIN_NS if found else None


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
