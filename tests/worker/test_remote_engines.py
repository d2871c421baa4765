"""Deploying through engines reached over TLS and over ssh (docs/architecture.md#reaching-hosts: a host's
engine URL is a unix socket, tcp:// with TLS client certificates, or ssh://): the test bed's last host, as the
only host."""

import json

import docker
import pytest

from berth.core.crypto import encrypt
from berth.deployments.models import Deployment
from berth.deployments.services import release_create
from berth.fleet.models import DockerHost
from berth.fleet.services import host_register
from tests.deployments.helpers import fetch, live, run_deployments
from tests.factories import AppFactory, SizeFactory
from tests.fleet import WEB, remove_berth_containers
from worker.tasks import check_engine

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_a_release_deploys_and_answers_through_a_remote_engine(remote_engine, tenant, transport):
    remove_berth_containers([remote_engine.host])
    fields = remote_engine.tls_fields() if transport == "tls" else remote_engine.ssh_fields()
    # The check a worker does on registration, in-process here: this test is about deploying.
    engine = check_engine(encrypt(json.dumps(fields)))
    assert engine.get("version", "").startswith("20.10"), engine
    host = host_register(
        actor=None,
        engine=engine,
        name=f"remote-{transport}",
        address=remote_engine.host.address,
        memory_mb=1024,
        cpu_millis=2000,
        **fields,
    )
    assert host.status == DockerHost.Status.UP
    SizeFactory(name="small", memory_mb=64, cpu_millis=250, is_default=True)
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    try:
        _, deployment = release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
        run_deployments(app)

        deployment.refresh_from_db()
        assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
        (container,) = live(app)
        assert container.host == host
        assert fetch(container) == (200, "web v1\n")
        # The container is really on that engine: its own unix socket says so.
        local = docker.APIClient(base_url=remote_engine.host.engine_url, timeout=30)
        assert local.inspect_container(container.docker_id)["State"]["Running"]
        local.close()
    finally:
        remove_berth_containers([remote_engine.host])
