"""Quotas: exceeding one is a clear 4xx that says which limit and by how much, and starts nothing."""

import pytest

from berth.applications.models import App, Formation
from berth.billing.services import quota_set
from berth.deployments.models import Deployment
from berth.deployments.services import release_create
from berth.tenancy.roles import Role
from tests.factories import AppFactory, HostFactory, SizeFactory

BASE = "/api/v1/orgs/acme"


@pytest.fixture
def app(organization, members, owner_client):
    HostFactory(memory_mb=8192)
    SizeFactory(name="small", memory_mb=128, is_default=True)
    SizeFactory(name="big", memory_mb=1024)
    app = AppFactory(organization=organization, name="shop")
    release, _ = release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1")
    App.objects.filter(pk=app.pk).update(current_release=release)
    return app


def scale(client, **change):
    return client.patch(f"{BASE}/apps/shop/formation/", {"formation": {"web": change}}, format="json")


@pytest.mark.django_db
def test_too_many_containers_says_which_limit_and_by_how_much(app, owner_client, organization):
    quota_set(actor=None, organization=organization, max_containers=3)
    deployments = Deployment.objects.count()
    response = scale(owner_client, quantity=5)
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "quota_exceeded"
    assert body["message"] == "This would run 5 containers; the organization's limit is 3 (2 over)."
    assert Formation.objects.get(app=app).quantity == 1
    assert Deployment.objects.count() == deployments  # nothing is started


@pytest.mark.django_db
def test_too_much_memory(app, owner_client, organization):
    quota_set(actor=None, organization=organization, max_memory_mb=2048)
    response = scale(owner_client, quantity=3, size="big")
    assert response.status_code == 403
    assert "3072 MB of memory; the organization's limit is 2048 MB (1024 MB over)" in response.json()["message"]
    assert Formation.objects.get(app=app).size.name == "small"


@pytest.mark.django_db
def test_too_many_apps(app, owner_client, organization):
    quota_set(actor=None, organization=organization, max_apps=1)
    response = owner_client.post(f"{BASE}/apps/", {"name": "second"}, format="json")
    assert response.status_code == 403
    assert response.json()["message"] == "The organization has 1 apps; its limit is 1."
    assert App.objects.filter(organization=organization).count() == 1


@pytest.mark.django_db
def test_a_lowered_quota_stops_nothing_and_still_allows_scaling_down(app, owner_client, organization):
    assert scale(owner_client, quantity=4).status_code == 202
    quota_set(actor=None, organization=organization, max_containers=2)
    assert scale(owner_client, quantity=5).status_code == 403
    assert scale(owner_client, quantity=3).status_code == 202  # still over, but smaller
    assert Formation.objects.get(app=app).quantity == 3


@pytest.mark.django_db
def test_quota_is_readable_by_members(app, client_for, members, organization):
    quota_set(actor=None, organization=organization, max_containers=7)
    body = client_for(members[Role.VIEWER]).get(f"{BASE}/quota/").json()
    assert body["max_containers"] == 7 and body["containers"] == 1 and body["apps"] == 1
    assert body["max_apps"] == 50  # the installation's default
