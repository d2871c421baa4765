"""The console's deployment list puts the ones an operator must look at first; its pages are read-only."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from berth.deployments.models import Deployment
from berth.fleet.models import Container
from tests.console.rows import (
    container_on,
    deployment_of,
    html_of,
    queries_for,
    release_of,
)
from tests.factories import AppFactory, HostFactory

pytestmark = pytest.mark.django_db

DEPLOYMENTS = "/console/deployments/deployment/"


def test_failed_and_stale_running_deployments_come_before_newer_ones(operator_client):
    release = release_of(AppFactory(name="web", organization__slug="acme"))
    now = timezone.now()
    stale = now - timedelta(seconds=settings.BERTH_DEPLOYMENT_STALE_SECONDS + 5)
    failed = deployment_of(release, state="failed", created_at=now - timedelta(hours=2), error="v1 never got healthy")
    stuck = deployment_of(release, state="running", created_at=now - timedelta(hours=1), heartbeat_at=stale)
    alive = deployment_of(release, state="running", created_at=now - timedelta(minutes=30), heartbeat_at=now)
    succeeded = deployment_of(release, state="succeeded", created_at=now)

    response = operator_client.get(DEPLOYMENTS)

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [stuck, failed, succeeded, alive]
    page = response.content.decode()
    assert "acme/web" in page
    assert "v1 never got healthy" in page


def test_deployment_list_costs_the_same_queries_for_2_or_20_apps(operator_client):
    def add(count):
        for _ in range(count):
            deployment_of(release_of(AppFactory()), state="failed")

    add(2)
    few = queries_for(operator_client, DEPLOYMENTS)
    add(18)
    assert queries_for(operator_client, DEPLOYMENTS) == few


def test_deployments_filter_by_state_and_kind(operator_client):
    release = release_of(AppFactory())
    failed = deployment_of(release, state="failed")
    deployment_of(release, state="succeeded")
    scale = deployment_of(release, state="succeeded", kind=Deployment.Kind.SCALE)

    by_state = operator_client.get(DEPLOYMENTS, {"state__exact": "failed"})
    by_kind = operator_client.get(DEPLOYMENTS, {"kind__exact": "scale"})

    assert list(by_state.context["cl"].result_list) == [failed]
    assert list(by_kind.context["cl"].result_list) == [scale]


def test_a_deployments_page_shows_its_steps_and_changes_nothing(operator_client):
    host = HostFactory(name="edge-7")
    release = release_of(AppFactory())
    container = container_on(host, release=release, name="web-v1-0", state=Container.State.RUNNING)
    deployment = deployment_of(release, state="running")
    deployment.steps.create(message="Started web-v1-0 on edge-7.", host=host, container=container)
    change = f"{DEPLOYMENTS}{deployment.pk}/change/"

    page = html_of(operator_client, change)

    assert "Started web-v1-0 on edge-7." in page
    assert f'href="/console/fleet/dockerhost/{host.pk}/change/"' in page
    assert f'href="/console/fleet/container/{container.pk}/change/"' in page
    assert 'name="_save"' not in page
    assert operator_client.post(change, {"state": "succeeded"}).status_code == 403
    assert operator_client.get(f"{DEPLOYMENTS}add/").status_code == 403
    assert operator_client.post(f"{DEPLOYMENTS}{deployment.pk}/delete/", {"post": "yes"}).status_code == 403
    deployment.refresh_from_db()
    assert deployment.state == "running"
