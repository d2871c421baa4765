"""The heartbeat checks the data path: a host whose engine answers but whose address does not is degraded."""

import errno
import socket

import pytest

from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import DockerHost
from tests.deployments.helpers import live, run_deployments
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import link_cut, link_up
from tests.timing import wait_for
from worker import datapath, reconcile

pytestmark = pytest.mark.docker


def status_after_heartbeat(host: DockerHost) -> tuple[str, str]:
    assert reconcile.check_host(host), "the engine answers on its socket whatever the link does"
    host.refresh_from_db()
    return host.status, host.last_error


def test_a_host_whose_published_ports_are_unreachable_is_degraded_until_they_answer(tenant, fleet, testbed_hosts):
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
    run_deployments(app)
    kept, cut = fleet
    [port] = [c.published_port for c in live(app) if c.host_id == cut.pk]
    with link_cut(testbed_hosts[-1].index):
        assert status_after_heartbeat(cut) == (
            DockerHost.Status.DEGRADED,
            f"{cut.address} does not answer on published ports {port}: No route to host",
        )
        assert status_after_heartbeat(kept) == (DockerHost.Status.UP, "")
        cut.refresh_from_db()
        assert cut.last_heartbeat_at is not None and cut.engine_version  # the engine did answer
        link_up(testbed_hosts[-1].index)
        assert wait_for(lambda: status_after_heartbeat(cut) == (DockerHost.Status.UP, ""), timeout=15)


def test_a_host_that_publishes_no_port_is_degraded_only_on_evidence(fleet, testbed_hosts):
    """With no published port, an answer from its address (a refusal too) proves the data path; no answer
    proves nothing, since firewalls drop ports nobody published. So a host whose containers all moved
    away stays degraded while cut off, and is up again once its address answers."""
    cut = fleet[-1]
    with link_cut(testbed_hosts[-1].index):
        assert status_after_heartbeat(cut) == (DockerHost.Status.UP, "")  # nothing to tell by: as it was
        reason = f"{cut.address} does not answer on published ports 32768: No route to host"
        DockerHost.objects.filter(pk=cut.pk).update(status=DockerHost.Status.DEGRADED, last_error=reason)
        cut.refresh_from_db()
        assert status_after_heartbeat(cut) == (DockerHost.Status.DEGRADED, reason)
        link_up(testbed_hosts[-1].index)
        assert wait_for(lambda: status_after_heartbeat(cut) == (DockerHost.Status.UP, ""), timeout=15)


def test_a_connection_or_a_refusal_is_an_answer():
    """Only a live network stack at the address connects or refuses; the ports are tried at once."""
    with socket.create_server(("127.0.0.1", 0)) as listening, socket.socket() as bound_only:
        bound_only.bind(("127.0.0.1", 0))
        open_port, closed_port = listening.getsockname()[1], bound_only.getsockname()[1]
        outcomes = datapath.connect_all("127.0.0.1", [open_port, closed_port])
    assert outcomes == {open_port: 0, closed_port: errno.ECONNREFUSED}
    assert set(outcomes.values()) <= datapath.ANSWERED


def test_a_host_without_published_ports_is_tried_on_its_engine_port_when_the_engine_is_at_its_address():
    from tests.factories import HostFactory

    def engine_port(engine_url, address="203.0.113.7"):
        return datapath._engine_port(HostFactory.build(engine_url=engine_url, address=address))

    assert engine_port("tcp://203.0.113.7:2376") == 2376
    assert engine_port("ssh://deploy@203.0.113.7") == 22
    assert engine_port("ssh://deploy@203.0.113.7:2222") == 2222
    assert engine_port("tcp://198.51.100.1:2376") is None  # the engine is reached elsewhere
    assert engine_port("unix:///var/run/docker.sock", address="127.0.0.1") is None
