"""Follow each host's Docker events, waking a reconcile of it at once (docs/architecture.md#observed-state-and-healing).

Events only make healing fast; correctness comes from the periodic pass, which also covers any
event this process missed while it or a host was down. Run it as `python -m worker.events`.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.utils import timezone

# Container events after which what runs may differ from what Berth believes. Not `kill`: Docker
# sends it with the signal, before the process has exited; the `die` that follows is what counts.
# Even `die` comes before the engine's container list says "exited" (the list catches up once the
# engine has cleaned up the container's network), so the pass it wakes inspects the containers
# named in the events instead of trusting the list for them.
WAKING_ACTIONS = {"die", "oom", "destroy", "stop", "health_status"}
REFRESH_HOSTS_S = 5.0
DEBOUNCE_S = 0.2

logger = logging.getLogger("berth.events")


class HostFollower(threading.Thread):
    """Streams one host's events; reconnects with back-off when the host goes away."""

    def __init__(self, host_id: int, wake: Callable[[int, str], None]) -> None:
        super().__init__(name=f"events-host-{host_id}", daemon=True)
        self.host_id = host_id
        self.wake = wake
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from berth.fleet.models import DockerHost

        from .engine import Engine, EngineError

        backoff = 1.0
        since = timezone.now()
        while not self.stopping.is_set():
            host = DockerHost.objects.filter(pk=self.host_id).first()
            connection.close()  # the stream may stay open for days; hold no database session meanwhile
            if host is None:
                return
            try:
                with Engine(host, timeout=None) as engine:
                    backoff = 1.0
                    stream = engine.events(since=since)
                    logger.info("following the events of %s", host.name)
                    for event in stream:
                        since = timezone.now()
                        if event.get("Action", "").split(":")[0] in WAKING_ACTIONS:
                            self.wake(self.host_id, event.get("Actor", {}).get("ID") or event.get("id", ""))
                        if self.stopping.is_set():
                            return
            except (EngineError, OSError, ValueError) as error:
                logger.info("events of %s interrupted: %s", host.name, error)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 30.0)


class Waker:
    """Sends reconcile_host for a host at once, then at most once per DEBOUNCE_S while events keep coming.

    A burst of events is one pass at its start and one at its end (leading and trailing edges): an
    event inside the quiet window is never dropped, only deferred to the window's end, because the
    pass woken by the first event may have looked before the later events happened. Each send names
    the containers the events were about (see reconcile.observe_host's `suspects`).
    """

    def __init__(self, send: Callable[[int, list[str]], None], debounce_s: float = DEBOUNCE_S) -> None:
        self.send = send
        self.debounce_s = debounce_s
        self.last: dict[int, float] = {}
        self.pending: dict[int, set[str]] = {}  # hosts with a deferred send, and its containers
        self.lock = threading.Lock()

    def __call__(self, host_id: int, docker_id: str = "") -> None:
        now = time.monotonic()
        with self.lock:
            wait = self.last.get(host_id, -self.debounce_s) + self.debounce_s - now
            if wait > 0:
                if host_id not in self.pending:
                    self.pending[host_id] = set()
                    timer = threading.Timer(wait, self._send_deferred, args=(host_id,))
                    timer.daemon = True
                    timer.start()
                self.pending[host_id] |= {docker_id} - {""}
                return
            self.last[host_id] = now
        self.send(host_id, sorted({docker_id} - {""}))

    def _send_deferred(self, host_id: int) -> None:
        with self.lock:
            suspects = self.pending.pop(host_id, set())
            self.last[host_id] = time.monotonic()
        self.send(host_id, sorted(suspects))


def follow_fleet(stop: threading.Event, send: Callable[[int, list[str]], None]) -> None:
    """Keep one follower per registered host until `stop` is set."""
    from django.db import connection

    from berth.fleet.models import DockerHost

    waker = Waker(send)
    followers: dict[int, HostFollower] = {}
    while not stop.is_set():
        wanted = set(DockerHost.objects.exclude(state=DockerHost.State.RETIRED).values_list("pk", flat=True))
        for host_id in wanted - set(followers):
            followers[host_id] = HostFollower(host_id, waker)
            followers[host_id].start()
        for host_id in set(followers) - wanted:
            followers.pop(host_id).stopping.set()
        stop.wait(REFRESH_HOSTS_S)
    for follower in followers.values():
        follower.stopping.set()
    connection.close()


def main() -> None:
    import django

    from . import celery  # noqa: F401 - sets up the path and settings

    django.setup()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from berth.core import task_names
    from berth.core.queue import enqueue

    def send(host_id: int, suspects: list[str]) -> None:
        enqueue(task_names.RECONCILE_HOST, host_id, suspects=suspects)

    logger.info("following Docker events of every host")
    follow_fleet(threading.Event(), send)


if __name__ == "__main__":
    main()
