"""Operators register, change and remove routers through the API, as they do hosts: what each router's last
pass found, every refusal naming its field with nothing stored, and an audit event per change."""

from datetime import UTC, datetime

import pytest

from berth.audit.models import AuditEvent
from berth.fleet.models import Router
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import RouterFactory, UserFactory

from .test_bad_input import assert_error

ROUTERS = "/api/v1/fleet/routers/"
EDGE = {"name": "edge-1", "admin_url": "unix:///run/berth/edge-1/admin.sock", "public_address": "203.0.113.7"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(is_staff=True, email="operator@example.test")


@pytest.fixture
def operator_api(operator):
    return token_client(operator)


def router_events() -> list[tuple[str, dict]]:
    return list(AuditEvent.objects.filter(action__startswith="router.").order_by("pk").values_list("action", "changes"))


def test_routers_are_listed_with_what_the_last_pass_found(operator_api):
    synced = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    RouterFactory(
        name="local", status=Router.Status.UP, capacity=1000, routes=12, last_synced_at=synced, http_port=8080
    )
    RouterFactory(name="remote", status=Router.Status.DOWN, last_error="[Errno 111] Connection refused")

    listed = operator_api.get(ROUTERS).json()["results"]

    assert [(r["name"], r["status"], r["capacity"], r["routes"], r["last_error"]) for r in listed] == [
        ("local", "up", 1000, 12, ""),
        ("remote", "down", None, None, "[Errno 111] Connection refused"),
    ]
    assert listed[0]["last_synced_at"] == "2026-12-06T08:00:00Z"
    assert (listed[0]["http_port"], listed[0]["https_port"], listed[0]["state"]) == (8080, 443, "active")
    assert operator_api.get(f"{ROUTERS}{listed[1]['id']}/").json()["last_error"] == "[Errno 111] Connection refused"


def test_registering_a_router_stores_it_pending_and_records_it(operator_api, operator):
    response = operator_api.post(ROUTERS, {**EDGE, "http_port": 8080, "https_port": 8443}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["state"], body["status"], body["http_port"], body["https_port"]) == (
        "edge-1",
        "active",
        "pending",
        8080,
        8443,
    )
    router = Router.objects.get()
    assert (router.admin_url, router.public_address) == (EDGE["admin_url"], "203.0.113.7")
    event = AuditEvent.objects.get(action="router.register")
    assert (event.source, event.actor, event.target_id) == ("api", operator, str(router.pk))


def test_a_router_registered_without_ports_takes_80_and_443(operator_api):
    body = operator_api.post(ROUTERS, EDGE, format="json").json()
    assert (body["http_port"], body["https_port"]) == (80, 443)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"admin_url": "tcp://10.0.0.5:9999"}, "admin_url", "must not listen beyond this machine"),
        ({"admin_url": "tcp://router.example.com:9999"}, "admin_url", "must not listen beyond this machine"),
        ({"admin_url": "http://127.0.0.1:9999"}, "admin_url", "unix:///path/admin.sock or tcp://127.0.0.1:PORT"),
        ({"admin_url": "unix://relative/admin.sock"}, "admin_url", "absolute path"),
        ({"admin_url": "tcp://127.0.0.1"}, "admin_url", "names an address and a port"),
        ({"admin_url": ""}, "admin_url", "Give the router's admin endpoint"),
        ({"admin_url": "unix:///" + "a" * 300}, "admin_url", "255"),
        ({"http_port": 0}, "http_port", "1 to 65535"),
        ({"https_port": 65536}, "https_port", "1 to 65535"),
        ({"http_port": "80"}, "http_port", "1 to 65535"),
        ({"http_port": True}, "http_port", "1 to 65535"),
        ({"name": "Edge 1"}, "name", ""),
        ({"name": ""}, "name", ""),
        ({"public_address": ""}, "public_address", ""),
        ({"status": "up"}, "status", "not accepted"),
    ],
)
def test_a_refused_registration_names_the_field_and_stores_nothing(operator_api, body, field, reason):
    response = operator_api.post(ROUTERS, {**EDGE, **body}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"], response.json()
    assert reason in response.json()["fields"][field][0]
    assert not Router.objects.exists()
    assert router_events() == []


def test_a_name_taken_is_a_409(operator_api):
    RouterFactory(name="edge-1")
    response = operator_api.post(ROUTERS, EDGE, format="json")
    assert_error(response, 409, "name_taken", "name")
    assert Router.objects.count() == 1
    assert router_events() == []


def test_patch_changes_a_router_and_records_what_changed(operator_api):
    router = RouterFactory(name="edge-1", admin_url="unix:///run/a.sock")

    response = operator_api.patch(
        f"{ROUTERS}{router.pk}/",
        {"state": "disabled", "admin_url": "tcp://127.0.0.1:9999", "https_port": 8443},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["admin_url"]) == ("disabled", "tcp://127.0.0.1:9999")
    router.refresh_from_db()
    assert (router.state, router.admin_url, router.https_port) == ("disabled", "tcp://127.0.0.1:9999", 8443)
    assert router_events() == [
        (
            "router.update",
            {
                "state": ["active", "disabled"],
                "admin_url": ["unix:///run/a.sock", "tcp://127.0.0.1:9999"],
                "https_port": [443, 8443],
            },
        )
    ]
    operator_api.patch(f"{ROUTERS}{router.pk}/", {"state": "disabled"}, format="json")
    assert len(router_events()) == 1  # nothing changed, nothing recorded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"admin_url": "tcp://192.0.2.1:9999"}, "admin_url"),
        ({"state": "draining"}, "state"),
        ({"http_port": -1}, "http_port"),
        ({"name": "renamed"}, "name"),
        ({"state": "disabled", "admin_url": "ftp://x"}, "admin_url"),
    ],
)
def test_a_refused_change_names_the_field_and_changes_nothing(operator_api, body, field):
    router = RouterFactory(name="edge-1")
    before = Router.objects.values().get()

    response = operator_api.patch(f"{ROUTERS}{router.pk}/", body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert Router.objects.values().get() == before
    assert router_events() == []


def test_removing_a_router_forgets_it_and_records_it(operator_api):
    router = RouterFactory(name="edge-1")
    assert operator_api.delete(f"{ROUTERS}{router.pk}/").status_code == 204
    assert not Router.objects.exists()
    assert router_events() == [("router.remove", {"name": "edge-1"})]
    assert_error(operator_api.delete(f"{ROUTERS}{router.pk}/"), 404, "not_found")


@pytest.mark.parametrize("role", Role.values)
def test_tenants_of_every_role_get_403_and_change_nothing(role, organization, members):
    router = RouterFactory(name="edge-1")
    client = token_client(members[role])
    for response in (
        client.get(ROUTERS),
        client.get(f"{ROUTERS}{router.pk}/"),
        client.post(ROUTERS, {**EDGE, "name": "edge-2"}, format="json"),
        client.patch(f"{ROUTERS}{router.pk}/", {"state": "disabled"}, format="json"),
        client.delete(f"{ROUTERS}{router.pk}/"),
    ):
        assert_error(response, 403, "permission_denied")
    assert list(Router.objects.values_list("name", "state")) == [("edge-1", "active")]


def test_the_schema_says_what_a_routers_status_means(client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    status = schema["components"]["schemas"]["Router"]["properties"]["status"]
    assert "down (its admin endpoint does not answer" in status["description"]
    assert schema["components"]["schemas"]["RouterStatusEnum"]["enum"] == ["pending", "up", "down"]
