"""The live tail: an app's lines as Server-Sent Events, for as long as the client stays (docs/logs.md#reading-logs).

It runs in the ASGI web process's event loop and holds no thread while it waits: one Redis connection
per tail, blocked in XREAD for at most a heartbeat. Each line is an event whose `id:` is its store id,
so a client that reconnects (EventSource does by itself) sends `Last-Event-ID` and goes on after the
last line it got. What cannot be given back is said instead, as a `notice` event: lines the retention
trimmed before the client read them, and lines lost when the log store restarted. The store being away
does not end the stream: the tail says so, waits and tries again.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.utils import timezone

from . import store
from .lines import LogLine
from .query import LogQuery

logger = logging.getLogger(__name__)

BATCH = 500
# Between two attempts to reach a store that does not answer, growing to the last value.
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# What EventSource waits before reconnecting by itself, in milliseconds.
CLIENT_RETRY_MS = 2000
_GONE = (redis.ConnectionError, redis.TimeoutError, OSError)


def line_event(line: LogLine) -> str:
    return f"id: {line.id}\ndata: {json.dumps(line.as_dict(), ensure_ascii=False)}\n\n"


def notice_event(text: str, **extra: str) -> str:
    return f"event: notice\ndata: {json.dumps({'text': text, **extra})}\n\n"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_of(entry_id: str) -> datetime:
    return datetime.fromtimestamp(store.id_key(entry_id)[0] / 1000, tz=UTC)


async def events(app_id: int, keys: tuple[str, str], query: LogQuery, last_event_id: str | None) -> AsyncIterator[str]:
    """The stream's text, event by event. Without `last_event_id` it opens with the query's recent lines;
    with one, it goes on after that line. `keys` are the app's stream and the store's epoch
    (store.stream_key, store.epoch_key, read by the caller: they name the database, which this coroutine
    must not touch)."""
    key, epoch = keys
    client = redis.asyncio.Redis.from_url(
        settings.BERTH_LOG_REDIS_URL, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=0
    )
    heartbeat_ms = int(settings.BERTH_LOG_HEARTBEAT_SECONDS * 1000)
    cursor = last_event_id
    server: str | None = None  # the store's run id, to tell a restart from a blip
    lost_at: datetime | None = None
    failures = 0
    check = cursor is not None  # look for lines the client missed before reading on
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n"
        while True:
            try:
                info = await client.info("server")
                if server is not None and info["run_id"] != server and cursor is not None:
                    yield notice_event(
                        f"The log store restarted; lines stored after {_iso(_time_of(cursor))} that this view had not "
                        "shown yet are lost.",
                        since=_iso(_time_of(cursor)),
                    )
                    check = False
                server = info["run_id"]
                if lost_at is not None:
                    yield notice_event(f"The log store answers again (it did not from {_iso(lost_at)}).")
                    lost_at, failures = None, 0
                if cursor is None:
                    backlog, cursor = await _backlog(client, key, query)
                    for line in backlog:
                        yield line_event(line)
                elif check:
                    missed = await _missed(client, key, cursor, epoch)
                    if missed:
                        yield missed
                check = False
                # Says the tail reads on from here: lines stored from now on will follow.
                yield ": live\n\n"
                behind = False
                while True:
                    if behind:
                        # Behind a chatty app: the retention may have trimmed what this tail has not read yet.
                        missed = await _missed(client, key, cursor, None)
                        if missed:
                            yield missed
                    reply = await client.xread({key: cursor}, count=BATCH, block=heartbeat_ms)
                    if not reply:
                        yield ": keep-alive\n\n"
                        behind = False
                        continue
                    batch = store.parsed(_entries(reply))
                    for line in batch:
                        if query.where.matches(line):
                            yield line_event(line)
                    cursor = batch[-1].id
                    behind = len(batch) == BATCH
            except _GONE as error:
                if lost_at is None:
                    lost_at = timezone.now()
                    logger.warning("log tail of app %s: the log store does not answer: %s", app_id, error)
                    yield notice_event("The log store does not answer; this view tries again and shows what it missed.")
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
                check = True
    finally:
        await client.aclose()


def _entries(reply: Any) -> Any:
    """The entries of the one stream an XREAD reply holds (a list over RESP2, a dict over RESP3)."""
    return next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]


async def _backlog(client: redis.asyncio.Redis, key: str, query: LogQuery) -> tuple[list[LogLine], str]:
    """The query's recent lines, oldest first, and the id to tail from: lines stored while they were read
    come after it, so none is skipped and none shown twice."""
    newest = store.parsed(await client.xrevrange(key, count=1))
    start = newest[0].id if newest else "0-0"
    if not query.lines:
        return [], start
    found: list[LogLine] = []
    high, low = "+", store.id_at(query.since) if query.since else "-"
    scanned = 0
    while len(found) < query.lines and scanned < store.MAX_SCAN:
        batch = store.parsed(await client.xrevrange(key, max=high, min=low, count=2000))
        if not batch:
            break
        scanned += len(batch)
        found += [line for line in batch if query.where.matches(line)][: query.lines - len(found)]
        high = f"({batch[-1].id}"
    found.reverse()
    if found and store.id_key(found[-1].id) > store.id_key(start):
        start = found[-1].id
    return found, start


async def _missed(client: redis.asyncio.Redis, key: str, cursor: str, epoch: str | None) -> str | None:
    """A notice for the lines after `cursor` that the store no longer has, if any. With `epoch` (the store's
    epoch key), a store that restarted empty since the cursor's line is told from one that trimmed it."""
    if cursor == "0-0" or await client.xrange(key, min=cursor, max=cursor):
        return None  # the client's last line is still there, so everything after it is too
    since = _time_of(cursor)
    if epoch is not None:
        began = await client.get(epoch)
        if began is None or int(began) // 1000 > store.id_key(cursor)[0]:
            return notice_event(
                f"The log store restarted since {_iso(since)}: the lines it held from then on are lost.",
                since=_iso(since),
            )
    first = store.parsed(await client.xrange(key, count=1))
    if first and store.id_key(first[0].id) > store.id_key(cursor):
        until = _time_of(first[0].id)
        return notice_event(
            f"Lines stored between {_iso(since)} and {_iso(until)} were trimmed before this view read them (an "
            f"app keeps its last {settings.BERTH_LOG_MAX_LINES} lines, none older than "
            f"{settings.BERTH_LOG_MAX_AGE_HOURS} hours).",
            since=_iso(since),
            until=_iso(until),
        )
    return None
