"""The heartbeat checks the data path: a host whose engine answers but whose address does not is degraded."""

import pytest

from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import DockerHost
from tests.deployments.helpers import live, run_deployments, wait_for
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import link_cut, link_up
from worker import reconcile

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
