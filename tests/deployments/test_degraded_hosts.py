"""A host whose address is cut off while its engine answers (issue 9): no new replicas go there, its
replicas are replaced elsewhere, and operators see it degraded with the reason."""

from collections import Counter

import pytest
from django.utils import timezone

from berth.deployments.models import Deployment
from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import Container, DockerHost
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import link_cut, link_up
from tests.timing import wait_for
from worker import reconcile, tasks

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker


def beat(app) -> None:
    """One round of what beat and the worker run: heartbeat, probes, the periodic pass, and the
    deployments they queue."""
    tasks.check_hosts()
    tasks.probe_fleet()
    tasks.reconcile_fleet()
    run_deployments(app)


def story(app) -> str:
    """What happened, for a failure's message: the hosts, the app's containers and its deployments' steps."""
    lines = [f"host {h.name}: {h.status} {h.last_error}" for h in DockerHost.objects.all()]
    for c in Container.objects.filter(app=app).select_related("host").order_by("id"):
        lines.append(f"{c.name} on {c.host.name}: {c.state} {c.health} created {c.created_at:%H:%M:%S.%f}")
    for deployment in Deployment.objects.filter(app=app).order_by("id"):
        lines.append(f"deployment {deployment.pk} {deployment.kind} {deployment.state} {deployment.error}")
        lines += [f"  {s.at:%H:%M:%S.%f} {s.message}" for s in deployment.steps.order_by("id")]
    return "\n".join(lines)


def test_replicas_on_a_host_cut_off_the_network_come_back_to_full_strength_elsewhere(tenant, fleet, testbed_hosts):
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 4}})
    run_deployments(app)
    kept, cut = fleet
    assert Counter(c.host_id for c in live(app)) == {kept.pk: 2, cut.pk: 2}
    cut_at = timezone.now()

    def at_full_strength_on_the_other_host() -> bool:
        beat(app)
        replicas = live(app)
        return len(replicas) == 4 and all(
            c.host_id == kept.pk and c.health == Container.Health.HEALTHY for c in replicas
        )

    with link_cut(testbed_hosts[-1].index):
        try:
            wait_for(at_full_strength_on_the_other_host, timeout=90, interval=0.5)
        except AssertionError:
            pytest.fail(f"not at full strength on {kept.name} within 90 s:\n{story(app)}")
        assert [fetch(c)[0] for c in live(app)] == [200] * 4
        assert sorted(c.index for c in live(app)) == [0, 1, 2, 3]
        cut.refresh_from_db()
        assert cut.status == DockerHost.Status.DEGRADED
        assert cut.last_error.startswith(f"{cut.address} does not answer on published ports ")
        assert cut.last_error.endswith(": No route to host")
        # Not one replacement went to the cut host, and its old replicas were stopped by its engine.
        assert not Container.objects.filter(app=app, host=cut, created_at__gt=cut_at).exists()
        assert set(Container.objects.filter(app=app, host=cut).values_list("state", flat=True)) == {"removed"}
        assert Deployment.objects.filter(app=app, kind=Deployment.Kind.HEAL, state="succeeded").exists()
        link_up(testbed_hosts[-1].index)
        wait_for(lambda: reconcile.check_host(cut) and DockerHost.objects.get(pk=cut.pk).status == "up", timeout=15)
    cut.refresh_from_db()
    assert (cut.status, cut.last_error) == (DockerHost.Status.UP, "")
