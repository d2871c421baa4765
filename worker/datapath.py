"""Whether a host's address answers where its published ports are: the path requests take to its containers.

The heartbeat talks to the engine, which may answer (over a unix socket, ssh, or another network)
while nobody reaches the containers. So once the engine has answered, the worker connects to the
host's address on the published ports of a few of its running containers:

- one connects, or is refused or reset: something at the address answered, so the host is up (a
  refusal is the container's trouble, which its health check sees);
- none answers (unreachable, or no answer in time): the host is degraded, and takes no new containers.

A host that publishes no port has nothing to prove the data path with. It is tried on one port
(its engine's, when the engine is reached at that address, else the discard port 9): an answer,
a refusal included, proves the address works, so a degraded host is up again; no answer proves
nothing, since a firewall may drop or reject ports nobody published, so the host keeps its status.
An unreachable host that runs nothing is then up until containers are placed there: the heartbeat
sees their ports, and the health failures of those new containers steer placement away meanwhile.
"""

import errno
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from berth.fleet.models import Container, DockerHost

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
PORTS_TRIED = 3
IDLE_PORT = 9  # discard: seldom served, so the usual answer is a refusal
# What only a live network stack at the address sends back.
ANSWERED = {0, errno.ECONNREFUSED, errno.ECONNRESET}


@dataclass(frozen=True)
class Verdict:
    status: str  # DockerHost.Status.UP or DEGRADED
    reason: str = ""  # why it is degraded, for operators (DockerHost.last_error)


def check(host: DockerHost) -> Verdict:
    """The status of a host whose engine just answered."""
    verdict = _verdict(host)
    if (verdict.status == DockerHost.Status.DEGRADED) != (host.status == DockerHost.Status.DEGRADED):
        logger.warning("host %s is %s %s", host.name, verdict.status, verdict.reason)
    return verdict


def _verdict(host: DockerHost) -> Verdict:
    ports = published_ports(host)
    if not ports:
        return _check_idle(host)
    outcomes = connect_all(host.address, ports)
    if any(code in ANSWERED for code in outcomes.values()):
        return Verdict(DockerHost.Status.UP)
    listed = ", ".join(str(port) for port in ports)
    return Verdict(
        DockerHost.Status.DEGRADED,
        f"{host.address} does not answer on published ports {listed}: {_describe(outcomes[ports[0]])}",
    )


def published_ports(host: DockerHost) -> list[int]:
    """Ports of the host's newest running containers, as recorded when they started."""
    running = Container.objects.filter(host=host, state=Container.State.RUNNING, published_port__isnull=False)
    ports = running.order_by("-id").values_list("published_port", flat=True)[:PORTS_TRIED]
    return [port for port in ports if port is not None]  # all of them: filtered on above


def _check_idle(host: DockerHost) -> Verdict:
    port = _engine_port(host) or IDLE_PORT
    if connect_all(host.address, [port])[port] in ANSWERED:
        return Verdict(DockerHost.Status.UP)
    if host.status == DockerHost.Status.DEGRADED:
        return Verdict(DockerHost.Status.DEGRADED, host.last_error)
    return Verdict(DockerHost.Status.UP)


def _engine_port(host: DockerHost) -> int | None:
    """The port of a tcp:// or ssh:// engine reached at the host's own address: a port known to listen."""
    url = urlsplit(host.engine_url)
    if url.scheme not in ("tcp", "ssh") or url.hostname != host.address:
        return None
    return url.port or (22 if url.scheme == "ssh" else None)


def connect_all(address: str, ports: list[int]) -> dict[int, int]:
    """Connect to each port at once; per port 0 (connected) or the errno (ETIMEDOUT when nothing came back)."""
    with ThreadPoolExecutor(max_workers=len(ports)) as pool:
        return dict(zip(ports, pool.map(lambda port: _connect(address, port), ports), strict=True))


def _connect(address: str, port: int) -> int:
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S):
            return 0
    except TimeoutError:
        return errno.ETIMEDOUT
    except OSError as error:
        return error.errno or errno.EIO


def _describe(code: int) -> str:
    return f"no answer within {CONNECT_TIMEOUT_S:g} s" if code == errno.ETIMEDOUT else os.strerror(code)
