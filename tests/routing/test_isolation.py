"""A router's admin endpoints are out of everyone's reach but Berth's worker: HAProxy's runtime API is a unix
socket only its user may open, Caddy's admin API too, and the only TCP ports either listens on are the
public ones and, on the loopback interface, the one Caddy asks before it gets a certificate. A tenant's
container reaches the public port like any client, and nothing else of the router."""

import re
import stat
import subprocess
from pathlib import Path

import docker
import pytest

from berth.fleet.models import Router
from berth.routing.hostnames import default_hostname
from tests.deployments.helpers import live
from tests.routers import TestRouter, running_router
from worker.routing import sync_routers

from .helpers import deploy_app

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def open_router_process(tmp_path_factory):
    """A router whose public ports listen on every address, as a production router's do."""
    yield from running_router(tmp_path_factory.mktemp("open-router"), slots=8, bind="0.0.0.0")  # noqa: S104


@pytest.fixture
def open_router(open_router_process, transactional_db):
    open_router_process.start()
    files = open_router_process.files
    Router.objects.create(
        name="open", admin_url=files.admin_url, http_port=files.http_port, https_port=files.https_port
    )
    sync_routers()
    return open_router_process


TEMPORARY_NAME = re.compile(r"\.\d+\.tmp$")


def pids(router: TestRouter) -> dict[str, set[int]]:
    """HAProxy's master and worker, and Caddy."""
    master = router.processes["haproxy"].pid
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {"haproxy": {master, *map(int, workers)}, "caddy": {router.processes["caddy"].pid}}


def listening(pid_set: set[int]) -> set[str]:
    """What these processes listen on: `tcp 0.0.0.0:80`, `udp …`, `unix /path` (HAProxy binds a unix
    socket under a temporary name and renames it into place; ss shows the name it was bound under)."""
    output = subprocess.run(["ss", "-ltuxnpH"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in output.splitlines():
        owners = {int(pid) for pid in re.findall(r"pid=(\d+),", line)}
        if not owners & pid_set:
            continue
        kind, _state, _recv, _send, local, *_ = line.split()
        if kind == "u_str":
            found.add("unix " + TEMPORARY_NAME.sub("", local))
        else:
            found.add(f"{kind} {local}")
    return found


def test_the_admin_endpoints_are_unix_sockets_only_the_routers_user_opens(open_router):
    files = open_router.files
    for socket in (files.admin_socket, files.tls_socket, files.directory / "caddy-admin.sock"):
        mode = socket.stat().st_mode
        assert stat.S_ISSOCK(mode), socket
        assert stat.S_IMODE(mode) & 0o077 == 0, f"{socket}: {oct(stat.S_IMODE(mode))}"
    assert stat.S_IMODE(files.admin_socket.stat().st_mode) == 0o600


def test_haproxy_and_caddy_listen_on_the_public_ports_and_the_loopback_ask_port_alone(open_router):
    files = open_router.files
    by = pids(open_router)
    assert listening(by["haproxy"]) == {
        f"tcp 0.0.0.0:{files.http_port}",
        f"tcp 127.0.0.1:{files.ask_port}",
        f"unix {files.admin_socket}",
        f"unix {files.tls_socket}",
    }
    # Go listens on IPv6 and IPv4 at once (`*`) for 0.0.0.0; over UDP too, for HTTP/3.
    assert listening(by["caddy"]) == {
        f"tcp *:{files.https_port}",
        f"udp *:{files.https_port}",
        f"unix {files.directory / 'caddy-admin.sock'}",
    }


def run_in(container, script: str) -> tuple[int, str]:
    """Run a shell script in the container (busybox's sh, wget and nc) and return its exit code and output."""
    client = docker.APIClient(base_url=container.host.engine_url)
    try:
        execution = client.exec_create(container.docker_id, ["sh", "-c", script])
        output = client.exec_start(execution["Id"]).decode(errors="replace")
        return client.exec_inspect(execution["Id"])["ExitCode"], output
    finally:
        client.close()


def gateway(container) -> str:
    """The address of the test bed host's way out: the root namespace's end of its veth pair, where a
    router on this machine that listens on every address answers (testbed/hosts.sh)."""
    index = container.host.address.split(".")[2]
    route = subprocess.run(["ip", "-n", f"berth-h{index}", "route", "show", "default"], capture_output=True, text=True)
    return route.stdout.split()[2]


def test_a_tenants_container_reaches_the_public_ports_and_nothing_else(fleet, open_router, tenant):
    app = deploy_app(tenant, "hello")
    [container] = live(app)
    files = open_router.files
    router = gateway(container)
    hostname = default_hostname("hello", "shop")

    # busybox's wget has no working timeout flag here (-T crashes it); nc's -w bounds each attempt.
    code, output = run_in(
        container,
        f"wget -O - --header 'Host: {hostname}' http://{router}:{files.http_port}/cgi-bin/request 2>/dev/null",
    )
    assert code == 0 and output.startswith(f"SERVED_BY={container.docker_id[:12]} "), output
    assert run_in(container, f"nc -w 5 {router} {files.https_port} </dev/null") == (0, "")

    for address in (router, "127.0.0.1"):
        code, output = run_in(container, f"nc -w 5 {address} {files.ask_port} </dev/null")
        assert code != 0 and "Connection refused" in output, f"the ask port on {address}: {output}"
    for socket in (files.admin_socket, files.directory / "caddy-admin.sock", files.tls_socket):
        code, output = run_in(container, f"ls {socket}")
        assert code != 0 and "No such file" in output, output
