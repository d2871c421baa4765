"""A list request costs the same number of SQL queries whatever the page holds."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from berth.applications.models import App
from berth.tenancy.roles import Role
from tests.factories import MembershipFactory, SizeFactory, UserFactory


def queries_for(client, path: str) -> int:
    client.get(path)  # the first request may record the token's last use
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured)


def add_apps(organization, count: int, creator, prefix: str) -> None:
    App.objects.bulk_create(
        App(organization=organization, name=f"{prefix}-{i}", description="x", created_by=creator) for i in range(count)
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orgs/acme/apps/?page_size=100",
        "/api/v1/orgs/acme/members/",
        "/api/v1/orgs/acme/audit-events/?page_size=100",
        "/api/v1/orgs/",
    ],
)
def test_list_queries_are_constant(path, organization, members, owner_client):
    for i in range(2):  # a couple of rows in every list, so both counts include fetching a page
        owner_client.post("/api/v1/orgs/acme/apps/", {"name": f"few-{i}"}, format="json")
    small = queries_for(owner_client, path)
    # Many more rows, created by many different people, on every list.
    add_apps(organization, 150, UserFactory(), "many")
    for i in range(10):
        owner_client.post("/api/v1/orgs/acme/apps/", {"name": f"more-{i}"}, format="json")
    for i in range(10):
        MembershipFactory(organization=organization, role=Role.VIEWER)
        owner_client.post("/api/v1/orgs/", {"slug": f"also-{i}", "name": "Also"}, format="json")
    large = queries_for(owner_client, path)
    assert small == large
    assert large <= 5


@pytest.mark.django_db
def test_a_release_costs_the_same_queries_whatever_the_apps_history(organization, owner_client):
    """Deploying sits on the way from the API request to the first healthy container: its queries
    must not grow with the app's releases, its process types or the organization's other apps."""
    SizeFactory(is_default=True)
    url = "/api/v1/orgs/acme/apps/store/releases/"
    owner_client.post("/api/v1/orgs/acme/apps/", {"name": "store"}, format="json")
    body = {"image": "berth-test/web:v1", "process_types": {"web": {"port": 8080}, "worker": {"command": ["run"]}}}

    def release() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = owner_client.post(url, body, format="json")
        assert response.status_code == 201, response.content
        return len(captured)

    release()  # the first release also makes the formation
    second = release()
    for _ in range(8):
        release()
    add_apps(organization, 50, UserFactory(), "other")
    assert release() == second
    assert second <= 13  # auth 2, app 2, config 1, formation 1, version 1, writes 4, savepoint 2
