"""A worker killed in the middle of a deployment leaves nothing duplicated or stuck (issue: "Must hold")."""

import time

import docker
import pytest
from django.conf import settings

from berth.deployments.models import Deployment
from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import Container
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.timing import wait_for
from worker import tasks

from .helpers import fetch, live

pytestmark = pytest.mark.docker


def berth_containers_on_engines(fleet, app) -> list[str]:
    ids = []
    for host in fleet:
        client = docker.APIClient(base_url=host.engine_url)
        ids += [c["Id"] for c in client.containers(filters={"label": f"berth.app_id={app.pk}"})]
        client.close()
    return ids


def test_killing_the_worker_mid_deployment_ends_with_exactly_the_wanted_containers(fleet, tenant, workers):
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    first = workers()
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 4}})

    try:
        wait_for(lambda: Container.objects.filter(app=app).exists(), timeout=30, interval=0.02)
    except AssertionError:
        states = list(Deployment.objects.filter(app=app).values_list("state", "error"))
        raise AssertionError(f"no container started; deployments: {states}\n{first.logs()[-2000:]}") from None
    first.kill()
    interrupted = list(Deployment.objects.filter(app=app).values_list("state", flat=True))
    assert "running" in interrupted or "queued" in interrupted, first.logs()

    workers()
    # The periodic pass re-sends deployments whose worker stopped proving it is alive.
    time.sleep(settings.BERTH_DEPLOYMENT_STALE_SECONDS + 0.5)
    tasks.reconcile_fleet()
    wait_for(lambda: not Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED).exists(), timeout=90)

    assert set(Deployment.objects.filter(app=app).values_list("state", flat=True)) == {"succeeded"}
    running = live(app)
    assert sorted(c.index for c in running) == [0, 1, 2, 3]
    assert all(fetch(c) == (200, "web v1\n") for c in running)
    assert sorted(berth_containers_on_engines(fleet, app)) == sorted(c.docker_id for c in running)
    steps = [s.message for d in Deployment.objects.filter(app=app) for s in d.steps.all()]
    assert any(s.startswith("Resumed by") for s in steps)
