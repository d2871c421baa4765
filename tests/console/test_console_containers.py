"""The console's fleet-wide container list: what runs where, at a constant cost, read-only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from berth.fleet.models import Container
from tests.console.rows import container_on, html_of, queries_for, release_of
from tests.factories import AppFactory, HostFactory

pytestmark = pytest.mark.django_db

CONTAINERS = "/console/fleet/container/"


def add_containers(count: int) -> None:
    """Each on its own host, of its own app, organization and release, so a per-row query would show."""
    for _ in range(count):
        container_on(HostFactory(), state=Container.State.RUNNING, started_at=timezone.now())


def test_container_list_costs_the_same_queries_for_2_or_20_containers(operator_client):
    add_containers(2)
    few = queries_for(operator_client, CONTAINERS)
    add_containers(18)
    many = queries_for(operator_client, CONTAINERS)
    assert many == few
    assert html_of(operator_client, CONTAINERS).count('class="field-release_version"') == 20


def test_container_list_says_where_and_how_long_each_container_runs(operator_client):
    host = HostFactory(name="edge-3")
    release = release_of(release_of(AppFactory(name="shop", organization__slug="acme")).app)
    started = timezone.now() - timedelta(hours=2, minutes=5)
    container_on(
        host,
        release=release,
        name="acme-shop-web-0",
        process_type="web",
        index=0,
        published_port=32801,
        started_at=started,
    )
    container_on(host, name="other-app-web-0")

    page = html_of(operator_client, f"{CONTAINERS}?q=shop")

    assert "acme-shop-web-0" in page
    assert "other-app-web-0" not in page
    for text in ["acme", "shop", "v2", "edge-3", "32801", "Running", "Healthy", "2\xa0hours, 5\xa0minutes"]:
        assert text in page, text


def test_container_list_filters_by_host_state_health_and_process_type(operator_client):
    edge, core = HostFactory(name="edge"), HostFactory(name="core")
    release = release_of(AppFactory())
    web = container_on(edge, release=release, name="web-0")
    worker = container_on(edge, release=release, name="worker-0", process_type="worker", health="unhealthy")
    lost = container_on(core, release=release, name="web-1", index=1, state=Container.State.LOST)

    def listed(**params):
        return {c.name for c in operator_client.get(CONTAINERS, params).context["cl"].result_list}

    assert listed(host__id__exact=edge.pk) == {web.name, worker.name}
    assert listed(state__exact="lost") == {lost.name}
    assert listed(health__exact="unhealthy") == {worker.name}
    assert listed(process_type__exact="worker") == {worker.name}


def test_containers_are_read_only_in_the_console(operator_client):
    container = container_on(HostFactory(), name="web-0")
    change = f"{CONTAINERS}{container.pk}/change/"

    assert "web-0" in html_of(operator_client, change)
    assert operator_client.post(change, {"state": "removed"}).status_code == 403
    assert operator_client.get(f"{CONTAINERS}add/").status_code == 403
    assert operator_client.post(f"{CONTAINERS}{container.pk}/delete/", {"post": "yes"}).status_code == 403
    container.refresh_from_db()
    assert container.state == Container.State.RUNNING
