"""Collect every container's stdout and stderr, from every host, into the log store (docs/logs.md).

Run it as `python -m worker.logs`. One thread per host lists Berth's containers and follows the host's
start events; one follower per container reads its lines with Docker's timestamps from the container's
cursor (the time of its last stored line, kept with the lines in the store), and one writer appends
them. Since the cursor lives in the store and every append skips lines not newer than it, the
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

    from .engine import Engine

# One append (one Redis script) stores at most this many lines: bigger would hold Redis up longer
# than other clients should wait, smaller costs a round trip more per line.
BATCH_LINES = 500
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


def read(engine: "Engine", source: Source, *, after_ns: int | None, follow: bool) -> Iterator[list[Entry]]:
    """A container's lines newer than `after_ns`, as entries for the store, in the lists they came in.

    Docker's `since` is inclusive, so the line at `after_ns` comes again and is skipped here. Docker
    stamps stdout and stderr in two threads, so a line may be written just after one of the other
    stream stamped a few microseconds later: such a line takes the time just after its predecessor,
    keeping each container's times increasing as the cursor needs, rather than being dropped.
    Within one stream Docker's times only increase, so a line not newer than the last of its own
    stream is one Docker sent again (its json-file follow repeats lines when it rotates the file) and
    is skipped.
    """
    last = after_ns or 0
    resumed = after_ns is None
    latest: dict[str, int] = {}  # Docker's time of the last line read from each stream
    for batch in engine.logs(source.docker_id, since_ns=after_ns, follow=follow):
        entries = []
        for stream, ns, text in batch:
            if not resumed:
                if ns <= last:
                    continue  # read and stored before
                resumed = True
            if ns <= latest.get(stream, 0):
                continue  # sent again by Docker
            latest[stream] = ns
            if ns <= last:
                ns = last + 1
            last = ns
            entries.append(
                Entry(ns, clean(text), process=source.process, process_type=source.process_type, stream=stream)
            )
        if entries:
            yield entries


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
        for entries in read(engine, source, after_ns=store.cursor(container_docker_id), follow=False):
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
    """Appends what the followers read. It takes everything waiting at once and writes it container by
    container, so the busier the collector, the bigger (and cheaper per line) its appends, and a lone
    line is stored as soon as it arrives. When Redis fails, the same lines are tried again."""

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
            waiting = [first]
            with contextlib.suppress(queue.Empty):
                while len(waiting) < QUEUE_BATCHES:
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
        self._engine: Engine | None = None

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

        last = store.cursor(self.source.docker_id)
        with Engine(self.host, timeout=None) as engine:
            self._engine = engine
            while True:
                for entries in read(engine, self.source, after_ns=last, follow=True):
                    self.writer.put(self.source, entries)
                    last = entries[-1].ns
                # The stream ends when the container stops, or (rarely) when the engine ends it early.
                observed = engine.inspect(self.source.docker_id)
                if observed is None or observed.state != DOCKER_RUNNING:
                    self.finished = True
                    return

    def cancel(self) -> None:
        """Close the connection (from another thread): the follower ends without finishing."""
        if self._engine is not None:
            self._engine.close()


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
