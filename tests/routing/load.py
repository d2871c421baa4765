"""Continuous HTTP load on an app's hostname through a router, counting every request and every failure.

Two kinds of client, as real ones behave: keep-alive clients that reuse one connection and never retry a
request (a closed connection is a failure, then they reconnect), and clients that open a new connection
per request. By default every other request is a POST, which the router never retries on another
replica once sent: only a replica that is stopped once idle, and joins once healthy, serves it. A
failure is a connection error, a timeout or a 5xx answer."""

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Report:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    # How many answers came from each replica line (first line of /cgi-bin/request: "SERVED_BY=id web vN").
    served_by: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return f"{self.requests} requests in {self.seconds:.1f} s ({self.rate:.0f}/s), {len(self.failures)} failed"


class Load:
    def __init__(
        self,
        router,
        hostname: str,
        *,
        path: str = "/cgi-bin/request",
        keepalive_clients: int = 4,
        fresh_clients: int = 4,
        per_client_rate: float = 20.0,
        https: bool = False,
        methods: tuple[str, ...] = ("GET", "POST"),
    ):
        self.router, self.hostname, self.path, self.https = router, hostname, path, https
        self.methods = methods
        self.kinds = ["keepalive"] * keepalive_clients + ["fresh"] * fresh_clients
        self.interval = 1.0 / per_client_rate
        self.report = Report()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        for number, kind in enumerate(self.kinds):
            thread = threading.Thread(target=self._client, args=(kind, number), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.report.seconds = time.monotonic() - self.started

    def _client(self, kind: str, number: int) -> None:
        connection = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            if connection is None:
                connection = self.router.connection(self.hostname, https=self.https, timeout=10)
            method = self.methods[self.report.requests % len(self.methods)]
            outcome, served = self._one(connection, method)
            with self._lock:
                self.report.requests += 1
                if outcome:
                    at = time.monotonic() - self.started
                    self.report.failures.append(f"{kind}-{number} {method} at {at:.2f}s: {outcome}")
                if served:
                    self.report.served_by[served] += 1
            if outcome or kind == "fresh":
                connection.close()
                connection = None
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        if connection is not None:
            connection.close()

    def _one(self, connection, method: str) -> tuple[str, str]:
        """One request: (what went wrong or "", the answering replica's line or "")."""
        try:
            body = b"x=1" if method == "POST" else None
            connection.request(method, self.path, body=body, headers={"Host": self.hostname})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            return f"{type(error).__name__}: {error}", ""
        if response.status >= 500:
            return f"HTTP {response.status}: {body[:120]}", ""
        first = body.split("\n", 1)[0]
        return "", first.removeprefix("SERVED_BY=") if first.startswith("SERVED_BY=") else ""
