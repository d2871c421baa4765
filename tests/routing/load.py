"""Continuous HTTP load on an app's hostname through a router, counting every request and every failure.

Two kinds of client, as real ones behave: keep-alive clients that reuse one connection and never retry a
request (a closed connection is a failure, then they reconnect), and clients that open a new connection
per request. By default every fourth request is a POST (to the test image's CGI; the GETs fetch `/`), which
the router never retries on another replica once sent: only a replica that is stopped once idle, and
joins once healthy, serves it. A failure is a connection error, a timeout or a 5xx answer.

The clients run in a process of their own, like real clients: the test's process runs the worker's code
in-process, and its CPU work would otherwise hold the clients back (one interpreter lock). This module
imports only the standard library, so that process starts in a fraction of a second."""

import http.client
import multiprocessing
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Report:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    # How many answers each first line had: "web vN" from `/`, "id web vN" from /cgi-bin/request (which
    # names the replica too, but forks a CGI per request: a 0.25-CPU test replica serves ~50 a second).
    served_by: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return f"{self.requests} requests in {self.seconds:.1f} s ({self.rate:.0f}/s), {len(self.failures)} failed"


@dataclass(frozen=True)
class Target:
    """Where the clients connect: the router's ports on 127.0.0.1, as a client of `hostname` would."""

    hostname: str
    http_port: int
    https_port: int
    ca_file: str
    https: bool = False

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        if not self.https:
            return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        context = ssl.create_default_context(cafile=self.ca_file)
        return SNIConnection(self.hostname, "127.0.0.1", self.https_port, timeout=timeout, context=context)


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, with the hostname as SNI and for the certificate check (*.localhost needs no DNS
    in browsers and curl; Python's resolver does not know it)."""

    def __init__(self, server_name: str, address: str, port: int, **kwargs):
        super().__init__(address, port, **kwargs)
        self.server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)  # type: ignore[attr-defined]


POST_PATH = "/cgi-bin/request"


class Load:
    def __init__(
        self,
        router,
        hostname: str,
        *,
        path: str = "/",
        keepalive_clients: int = 4,
        fresh_clients: int = 4,
        per_client_rate: float = 20.0,
        https: bool = False,
        methods: tuple[str, ...] = ("GET", "GET", "GET", "POST"),
    ):
        files = router.files
        target = Target(hostname, files.http_port, files.https_port, str(files.caddy_ca_root), https)
        kinds = ["keepalive"] * keepalive_clients + ["fresh"] * fresh_clients
        self._plan = (target, path, kinds, 1.0 / per_client_rate, methods)
        self.report = Report()

    def __enter__(self) -> "Load":
        context = multiprocessing.get_context("spawn")
        self._stop, ready = context.Event(), context.Event()
        self._results = context.Queue()
        self._process = context.Process(target=_clients, args=(*self._plan, ready, self._stop, self._results))
        self._process.start()
        if not ready.wait(30):
            raise RuntimeError("the load's clients did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.report = self._results.get(timeout=60)
        self._process.join(30)


def _clients(target: Target, path: str, kinds: list[str], interval: float, methods, ready, stop, results) -> None:
    """The load's process: one thread per client until `stop`, then the report on `results`."""
    report, lock = Report(), threading.Lock()
    started = time.monotonic()

    def client(kind: str, number: int) -> None:
        connection = None
        next_at = time.monotonic()
        count = 0
        while not stop.is_set():
            if connection is None:
                connection = target.connection()
            method = methods[(count + number) % len(methods)]
            count += 1
            outcome, served = _one(connection, target.hostname, path, method)
            with lock:
                report.requests += 1
                if outcome:
                    report.failures.append(f"{kind}-{number} {method} at {time.monotonic() - started:.2f}s: {outcome}")
                if served:
                    report.served_by[served] += 1
            if outcome or kind == "fresh":
                connection.close()
                connection = None
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client, args=(kind, n), daemon=True) for n, kind in enumerate(kinds)]
    for thread in threads:
        thread.start()
    ready.set()
    stop.wait()
    for thread in threads:
        thread.join(30)
    report.seconds = time.monotonic() - started
    results.put(report)


def _one(connection, hostname: str, path: str, method: str) -> tuple[str, str]:
    """One request: (what went wrong or "", the answering replica's line or "")."""
    try:
        body = b"x=1" if method == "POST" else None
        # busybox httpd takes a POST only for a CGI
        connection.request(method, POST_PATH if method == "POST" else path, body=body, headers={"Host": hostname})
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}", ""
    if response.status >= 500:
        return f"HTTP {response.status}: {text[:120]}", ""
    return "", text.split("\n", 1)[0].removeprefix("SERVED_BY=")
