"""Berth's side reaches the local Docker engine through the docker package, as the worker's driver will."""

import re

import docker
import pytest

pytestmark = pytest.mark.docker


def test_local_engine_answers_ping_and_version_over_its_unix_socket():
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=10)
    try:
        assert client.ping() is True
        version = client.version()
        # The client asked the engine for its API version and now speaks exactly that one.
        assert re.fullmatch(r"\d+\.\d+", version["ApiVersion"])
        assert client.api.api_version == version["ApiVersion"]
    finally:
        client.close()
