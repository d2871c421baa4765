"""The test bed is real: separate Docker hosts with their own addresses, and images that run hardened."""

import time
import uuid
from typing import TYPE_CHECKING

import docker
import httpx
import pytest

from tests.testbed import HOST_INDICES

if TYPE_CHECKING:
    from tests.testbed import TestHost

pytestmark = pytest.mark.docker

MACHINE_ENGINE = "unix:///var/run/docker.sock"
# Paths inside the container, not on this machine.
CONTAINER_TMP = "/tmp"
UNHEALTHY_FLAG = f"{CONTAINER_TMP}/unhealthy"
# Long enough for httpd to bind in a fresh container on a loaded machine, short enough to fail fast.
READY_TIMEOUT_S = 10


def engine(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, timeout=30)


def wait_for_answer(url: str) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_hosts_have_their_own_addresses_and_engines(testbed_hosts: "list[TestHost]"):
    assert [host.name for host in testbed_hosts] == [f"h{i}" for i in HOST_INDICES]
    assert len({host.address for host in testbed_hosts}) == 2
    engine_ids = set()
    for url in [MACHINE_ENGINE, *(host.engine_url for host in testbed_hosts)]:
        client = engine(url)
        try:
            engine_ids.add(client.info()["ID"])
        finally:
            client.close()
    # Two test hosts and the machine's own engine: three engines, not one reached three ways.
    assert len(engine_ids) == 3


def test_web_image_runs_hardened_on_host_address_and_health_fails_on_demand(testbed_hosts: "list[TestHost]"):
    host = testbed_hosts[0]
    client = engine(host.engine_url)
    container = None
    try:
        container = client.containers.run(
            "berth-test/web:v1",
            name=f"berth-testbed-{uuid.uuid4().hex[:12]}",
            detach=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={CONTAINER_TMP: "rw,size=1m"},
            pids_limit=64,
            ports={"8080/tcp": (host.address, None)},
            labels={"org.berth.test": __name__},
        )
        container.reload()
        binding = container.ports["8080/tcp"][0]
        assert binding["HostIp"] == host.address
        base = f"http://{host.address}:{binding['HostPort']}"

        index = wait_for_answer(f"{base}/")
        assert (index.status_code, index.text) == (200, "web v1\n")
        health = httpx.get(f"{base}/cgi-bin/health", timeout=5)
        assert (health.status_code, health.text) == (200, "ok\n")

        touched = container.exec_run(["touch", UNHEALTHY_FLAG])
        assert touched.exit_code == 0, touched.output
        assert httpx.get(f"{base}/cgi-bin/health", timeout=5).status_code == 500

        # The engine ran it as asked, and the image runs as a non-root user.
        config = container.attrs["HostConfig"]
        assert config["CapDrop"] == ["ALL"]
        assert config["SecurityOpt"] == ["no-new-privileges"]
        assert config["ReadonlyRootfs"] is True
        assert config["PidsLimit"] == 64
        assert container.attrs["Config"]["User"] == "10001:10001"
    finally:
        if container is not None:
            container.remove(force=True)
        client.close()
