"""Follow every host's Docker events and wake a reconcile of that host at once (DESIGN §3).

Events only make healing fast; correctness comes from the periodic pass, which also covers any
event this process missed while it or a host was down. Run it as `python -m worker.events`.
"""

import logging
import threading
import time

from django.utils import timezone

# Container events after which what runs may differ from what Berth believes.
WAKING_ACTIONS = {"die", "oom", "kill", "destroy", "stop", "health_status"}
REFRESH_HOSTS_S = 5.0
DEBOUNCE_S = 0.2

logger = logging.getLogger("berth.events")


class HostFollower(threading.Thread):
    """Streams one host's events; reconnects with back-off when the host goes away."""

    def __init__(self, host_id: int, wake):
        super().__init__(name=f"events-host-{host_id}", daemon=True)
        self.host_id = host_id
        self.wake = wake
        self.stopping = threading.Event()

    def run(self) -> None:
        from berth.fleet.models import DockerHost

        from .engine import Engine, EngineError

        backoff = 1.0
        since = timezone.now()
        while not self.stopping.is_set():
            host = DockerHost.objects.filter(pk=self.host_id).first()
            if host is None:
                return
            try:
                with Engine(host, timeout=None) as engine:
                    backoff = 1.0
                    for event in engine.events(since=since):
                        since = timezone.now()
                        if event.get("Action", "").split(":")[0] in WAKING_ACTIONS:
                            self.wake(self.host_id)
                        if self.stopping.is_set():
                            return
            except (EngineError, OSError, ValueError) as error:
                logger.info("events of %s interrupted: %s", host.name, error)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 30.0)


class Waker:
    """Sends reconcile_host at most once per DEBOUNCE_S per host: a burst of events is one pass."""

    def __init__(self, send):
        self.send = send
        self.last: dict[int, float] = {}
        self.lock = threading.Lock()

    def __call__(self, host_id: int) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(host_id, 0.0) < DEBOUNCE_S:
                return
            self.last[host_id] = now
        self.send(host_id)


def follow_fleet(stop: threading.Event, send) -> None:
    """Keep one follower per registered host until `stop` is set."""
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


def main() -> None:
    import django

    from .celery import app  # sets up the path and settings

    django.setup()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def send(host_id: int) -> None:
        app.send_task("berth.fleet.reconcile_host", args=[host_id])

    logger.info("following Docker events of every host")
    follow_fleet(threading.Event(), send)


if __name__ == "__main__":
    main()
