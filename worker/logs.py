"""Collect every container's stdout and stderr, from every host, into the log store (docs/logs.md).

Run it as `python -m worker.logs`. One thread per host lists Berth's containers and follows the host's
start events; one follower per container reads its lines with Docker's timestamps from the container's
cursors (the time of its last stored line per stream, kept with the lines in the store), and one writer
appends them. Since the cursors live in the store and every append skips lines not newer than them, the
collector may die and start again, run twice, or race the flush Berth makes before it removes a
container (`flush_container_logs`), and each line is still stored once.
"""

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import redis

from berth.logs import store
from berth.logs.lines import clean
from berth.logs.store import Entry

if TYPE_CHECKING:  # imported where used: `python -m worker.logs` loads this module before Django's models
    from berth.fleet.models import Container, DockerHost

    from .engine import Engine, LogStream

# One append (one Redis script) stores at most this many lines: bigger would hold Redis up longer
# than other clients should wait, smaller costs a round trip more per line.
BATCH_LINES = 500
# How long the writer gathers lines before an append: the most it adds to a line's way to a reader.
GATHER_S = 0.02
# A follower's pause after each read: a busy container's lines then come in fewer, larger reads, and
# each read wakes a thread. Measured with 3 containers printing 4,800 lines/s in all: 17.5 ms of CPU per
# 1,000 lines without the pause, 13 ms with it (31 ms with neither this nor GATHER_S).
READ_PAUSE_S = 0.01
# Lists of lines waiting for the writer; when it falls behind (Redis slow or away), followers wait
# and the lines wait in Docker's log files, from which the cursor resumes them.
QUEUE_BATCHES = 2_000
# A host thread lists the host's containers again after this long without an event: it catches a
# container whose start it missed, and notices a host that went away without closing the connection.
RELIST_S = 10.0
REFRESH_HOSTS_S = 5.0
BACKOFF_MAX_S = 30.0

logger = logging.getLogger("berth.logs")


@dataclass(frozen=True)
class Source:
    """Whose lines a container's are, from its labels: `web.1` of app 7, or `run.12` for a one-off run."""

    app_id: int
    docker_id: str
    process: str
    process_type: str


def source_of(docker_id: str, labels: dict) -> Source | None:
    """None for a container whose labels do not say which app it belongs to."""
    try:
        app_id = int(labels.get("berth.app_id") or "")
    except ValueError:
        return None
    process_type = labels.get("berth.process_type") or ""
    process = f"{process_type}.{labels.get('berth.index') or '0'}"
    return Source(app_id=app_id, docker_id=docker_id, process=process, process_type=process_type)


def read(log: "LogStream", source: Source, *, after: dict[str, int]) -> Iterator[list[Entry]]:
    """A container's lines newer than `after` (its cursors: the last stored time per stream), as entries
    for the store, in the lists they came in; `after` is updated as lines are read.

    The stream starts a little before the older cursor (`open_logs`) and lines read again are skipped
    here, per stream: Docker stamps stdout and stderr in two threads, so the times of a container's lines
    increase within each stream, not across the two.
    """
    for batch in log:
        entries = []
        for stream, ns, text in batch:
            if ns <= after.get(stream, 0):
                continue  # read and stored before
            after[stream] = ns
            entries.append(
                Entry(ns, clean(text), process=source.process, process_type=source.process_type, stream=stream)
            )
        if entries:
            yield entries


def open_logs(engine: "Engine", source: Source, after: dict[str, int], *, follow: bool) -> "LogStream":
    """The container's log from where nothing after its cursors `after` can be missed (store.resume_ns)."""
    return engine.logs(source.docker_id, since_ns=store.resume_ns(after), follow=follow)


def append(source: Source, entries: list[Entry]) -> int:
    """Store a container's lines in batches of at most BATCH_LINES; how many were new."""
    return sum(
        store.append(source.app_id, entries[start : start + BATCH_LINES], docker_id=source.docker_id)
        for start in range(0, len(entries), BATCH_LINES)
    )


def flush_container_logs(
    engine: "Engine", container_docker_id: str, app_id: int, process: str, process_type: str
) -> int:
    """Store what a container printed that is not stored yet: called after it stopped and before it is
    removed, so its last lines outlive it whether or not a collector followed it. Never raises (the
    removal must go on); returns how many lines were new."""
    from .engine import EngineError

    source = Source(app_id=app_id, docker_id=container_docker_id, process=process, process_type=process_type)
    stored = 0
    try:
        after = store.cursors(container_docker_id)
        for entries in read(open_logs(engine, source, after, follow=False), source, after=after):
            stored += append(source, entries)
    except (EngineError, redis.RedisError) as error:
        logger.warning("could not keep the last lines of %s: %s", container_docker_id[:12], error)
    return stored


def flush_container(engine: "Engine", container: "Container") -> int:
    """flush_container_logs for a container Berth has a row of."""
    process = f"{container.process_type}.{container.index}"
    return flush_container_logs(engine, container.docker_id, container.app_id, process, container.process_type)


def flush_before_removal(engine: "Engine", docker_id: str, labels: dict) -> int:
    """flush_container_logs for a container known by its labels (a reconcile pass's listing); nothing for
    one whose labels name no app."""
    source = source_of(docker_id, labels)
    if source is None:
        return 0
    return flush_container_logs(engine, docker_id, source.app_id, source.process, source.process_type)


class Writer(threading.Thread):
    """Appends what the followers read. From the first lines waiting it gathers for at most GATHER_S
    (or BATCH_LINES lines), then writes them container by container: a quiet app's line is stored
    within GATHER_S, and a busy collector makes one append per container per GATHER_S instead of one
    per read (the append's round trip, not the lines, is most of its cost). When Redis fails, the same
    lines are tried again."""

    def __init__(self) -> None:
        super().__init__(name="logs-writer", daemon=True)
        self.queue: queue.Queue[tuple[Source, list[Entry]]] = queue.Queue(QUEUE_BATCHES)
        self.stored = 0
        self.stopping = threading.Event()

    def put(self, source: Source, entries: list[Entry]) -> None:
        self.queue.put((source, entries))

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            waiting, lines = [first], len(first[1])
            until = time.monotonic() + GATHER_S
            while lines < BATCH_LINES and (left := until - time.monotonic()) > 0:
                try:
                    waiting.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
                lines += len(waiting[-1][1])
            with contextlib.suppress(queue.Empty):
                while len(waiting) < QUEUE_BATCHES:  # whatever else is already there
                    waiting.append(self.queue.get_nowait())
            self.write(waiting)

    def write(self, waiting: list[tuple[Source, list[Entry]]]) -> None:
        by_container: dict[str, tuple[Source, list[Entry]]] = {}
        for source, entries in waiting:
            by_container.setdefault(source.docker_id, (source, []))[1].extend(entries)
        backoff = 0.1
        for source, entries in by_container.values():
            while True:
                try:
                    self.stored += append(source, entries)
                    break
                except redis.RedisError as error:
                    logger.warning("storing lines failed, trying again in %.1f s: %s", backoff, error)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)


class Follower(threading.Thread):
    """Reads one container's lines until it stops (then `finished` is set) or its host goes away."""

    def __init__(self, host: "DockerHost", source: Source, writer: Writer) -> None:
        super().__init__(name=f"logs-{source.docker_id[:12]}", daemon=True)
        self.host, self.source, self.writer = host, source, writer
        self.finished = False
        self._stream: LogStream | None = None

    def run(self) -> None:
        from .engine import EngineError

        try:
            self.follow()
        except (EngineError, redis.RedisError) as error:
            logger.info("following %s stopped: %s", self.source.docker_id[:12], error)
        except Exception:  # a follower's end must not end the collector; its host thread starts another
            logger.exception("following %s failed", self.source.docker_id[:12])

    def follow(self) -> None:
        from .engine import DOCKER_RUNNING, Engine

        after = store.cursors(self.source.docker_id)
        with Engine(self.host, timeout=None) as engine:
            while True:
                self._stream = open_logs(engine, self.source, after, follow=True)
                for entries in read(self._stream, self.source, after=after):
                    self.writer.put(self.source, entries)
                    time.sleep(READ_PAUSE_S)
                # The stream ends when the container stops, or (rarely) when the engine ends it early.
                observed = engine.inspect(self.source.docker_id)
                if observed is None or observed.state != DOCKER_RUNNING:
                    self.finished = True
                    return

    def cancel(self) -> None:
        """Close the connection (from another thread): the follower ends without finishing."""
        if self._stream is not None:
            self._stream.close()


@dataclass
class HostState:
    """What one host thread knows: followers by container, containers read to their end, the apps it
    has seen there (to tell them when the host goes away) and whether it is unreachable now."""

    followers: dict[str, Follower] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    apps: set[int] = field(default_factory=set)
    lost_since: str = ""


class HostCollector(threading.Thread):
    """Keeps a follower on each of one host's containers; reconnects with back-off when the host goes
    away, telling the apps that had containers there (`berth[logs]`), and again when it is back."""

    def __init__(self, host_id: int, writer: Writer, say: Callable[[int, str], None] | None = None) -> None:
        super().__init__(name=f"logs-host-{host_id}", daemon=True)
        self.host_id, self.writer = host_id, writer
        self.say = say or (lambda app_id, text: store.say(app_id, "logs", text))
        self.state = HostState()
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection
        from django.utils import timezone

        from berth.fleet.models import DockerHost

        from .engine import Engine, EngineError

        backoff = 1.0
        while not self.stopping.is_set():
            host = DockerHost.objects.filter(pk=self.host_id).first()
            connection.close()  # the thread may live for days; it holds no database session meanwhile
            if host is None:
                break
            try:
                with Engine(host, timeout=int(RELIST_S)) as engine:
                    while not self.stopping.is_set():
                        since = timezone.now()
                        self.sync(host, engine.list_managed())
                        backoff = 1.0
                        self.watch(host, engine, since)
            except EngineError as error:
                self.lost(host, str(error))
            except Exception as error:  # whatever broke, the host is tried again
                logger.info("collecting from %s interrupted: %s", host.name, error)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        for follower in self.state.followers.values():
            follower.cancel()

    def watch(self, host: "DockerHost", engine: "Engine", since: datetime) -> None:
        """Start a follower at each container start, until RELIST_S pass without an event."""
        with contextlib.suppress(Exception):  # the read timeout (RELIST_S) ends the stream: list again
            for event in engine.events(since=since):
                if event.get("Action") == "start":
                    actor = event.get("Actor") or {}
                    self.ensure_follower(host, actor.get("ID", ""), actor.get("Attributes") or {})
                if self.stopping.is_set():
                    return

    def sync(self, host: "DockerHost", containers: list[dict]) -> None:
        """After a listing: a follower for every running container and for every ended one not read to
        its end yet (it may have printed its last lines while nobody followed)."""
        if self.state.lost_since:
            name = host.name
            for app_id in sorted(self.state.apps):
                self.say(app_id, f"contact with host {name} is back; its lines since {self.state.lost_since} follow")
            logger.info("%s answers again", name)
            self.state.lost_since = ""
        present = {c["docker_id"] for c in containers}
        self.state.finished &= present
        for docker_id in [d for d, f in self.state.followers.items() if not f.is_alive()]:
            follower = self.state.followers.pop(docker_id)
            if follower.finished:
                self.state.finished.add(docker_id)
        for summary in containers:
            if summary["docker_id"] not in self.state.finished:
                self.ensure_follower(host, summary["docker_id"], summary["labels"])

    def ensure_follower(self, host: "DockerHost", docker_id: str, labels: dict) -> None:
        follower = self.state.followers.get(docker_id)
        if follower is not None and follower.is_alive():
            return
        source = source_of(docker_id, labels)
        if source is None:
            return
        self.state.apps.add(source.app_id)
        self.state.followers[docker_id] = Follower(host, source, self.writer)
        self.state.followers[docker_id].start()

    def lost(self, host: "DockerHost", error: str) -> None:
        from django.utils import timezone

        name = host.name
        if self.state.lost_since:
            return
        self.state.lost_since = timezone.now().strftime("%H:%M:%S UTC")
        logger.warning("lost contact with %s: %s", name, error)
        for follower in self.state.followers.values():
            follower.cancel()
        for app_id in sorted(self.state.apps):
            self.say(
                app_id,
                f"lost contact with host {name} at {self.state.lost_since}; its lines will follow when it answers",
            )


def collect_fleet(stop: threading.Event, writer: Writer | None = None) -> None:
    """Keep one host thread per registered host, and the writer, until `stop` is set."""
    from django.db import connection

    from berth.fleet.models import DockerHost

    writer = writer or Writer()
    if not writer.is_alive():
        writer.start()
    collectors: dict[int, HostCollector] = {}
    while not stop.is_set():
        wanted = set(DockerHost.objects.exclude(state=DockerHost.State.RETIRED).values_list("pk", flat=True))
        connection.close()
        for host_id in wanted - set(collectors):
            collectors[host_id] = HostCollector(host_id, writer)
            collectors[host_id].start()
        for host_id in set(collectors) - wanted:
            collectors.pop(host_id).stopping.set()
        stop.wait(REFRESH_HOSTS_S)
    for collector in collectors.values():
        collector.stopping.set()
    writer.stopping.set()


def main() -> None:
    import signal

    import django

    from . import celery  # noqa: F401 - sets up the path and settings

    django.setup()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logger.info("collecting the logs of every host's containers")
    with contextlib.suppress(KeyboardInterrupt):
        collect_fleet(stop)


if __name__ == "__main__":
    main()
