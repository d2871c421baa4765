"""The rules of a canary at the API, without hosts: what is refused and why, what is allowed beside one, and
what the app's state says (docs/deploys.md#canary-releases). tests/routing/test_canary.py runs canaries."""

import pytest

from berth.applications.models import App, ConfigVar, Release
from berth.audit.models import AuditEvent
from berth.deployments.models import Canary, Deployment
from berth.deployments.selectors import target_release
from berth.deployments.services import release_create
from berth.tenancy.roles import Role
from tests.factories import AppFactory, HostFactory, SizeFactory

pytestmark = pytest.mark.django_db
BASE = "/api/v1/orgs/acme/apps/shop"
WEB = {"web": {"port": 8080}}


@pytest.fixture
def app(organization, members):
    HostFactory(memory_mb=2048)
    SizeFactory(name="small", memory_mb=64, is_default=True)
    return AppFactory(organization=organization, name="shop")


def running(app, members, *, quantity: int = 3, image: str = "berth-test/web:v1") -> Release:
    """As if the worker had deployed a release: it runs, its deployment succeeded."""
    release, deployment = release_create(actor=members[Role.OWNER], app=app, image=image, process_types=WEB)
    app.formation.update(quantity=quantity)
    Deployment.objects.filter(pk=deployment.pk).update(state=Deployment.State.SUCCEEDED)
    App.objects.filter(pk=app.pk).update(current_release=release)
    app.refresh_from_db()
    return release


def done(kind: str) -> None:
    """As if the worker had carried out the app's deployments of this kind."""
    Deployment.objects.filter(kind=kind).update(state=Deployment.State.SUCCEEDED)


def canary(client, weight=10, image="berth-test/web:v2", **more):
    body = {"image": image, "process_types": WEB, "canary_weight": weight, **more}
    return client.post(f"{BASE}/releases/", body, format="json")


def refused(response, status: int, *, field: str | None = None, code: str | None = None, says: str = "") -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    if field:
        assert field in body["fields"], body
    if code:
        assert body["error"] == code, body
    assert says.lower() in body["message"].lower(), body
    return body


@pytest.mark.parametrize("weight", [0, 100, -5, "ten", 10.5, None, True])
def test_a_weight_that_is_not_a_whole_number_from_1_to_99_is_refused_naming_the_field(
    weight, app, members, owner_client
):
    running(app, members)
    refused(canary(owner_client, weight), 400, field="canary_weight", code="validation_error")
    assert Release.objects.count() == 1 and not Canary.objects.exists()


def test_the_first_release_cannot_be_a_canary(app, owner_client):
    body = refused(canary(owner_client), 409, field="canary_weight", code="no_release", says="nothing runs yet")
    assert "first release" in body["message"]
    assert not Release.objects.exists() and not Canary.objects.exists()


def test_a_queued_first_release_is_not_running_either(app, members, owner_client):
    release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1", process_types=WEB)
    refused(canary(owner_client), 409, code="no_release")


def test_no_canary_while_a_release_is_being_deployed(app, members, owner_client):
    running(app, members)
    release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v2", process_types=WEB)
    refused(canary(owner_client, image="berth-test/web:v3"), 409, code="deploying", says="v2 is being deployed")


def test_a_canary_needs_a_process_type_both_releases_serve_over_http(app, members, owner_client):
    running(app, members)
    worker_only = {"worker": {"port": None, "health_check": {"type": "none"}}}
    refused(canary(owner_client, process_types=worker_only), 400, field="process_types", says="none in common")


def test_a_process_type_scaled_to_zero_has_nothing_to_share(app, members, owner_client):
    running(app, members, quantity=0)
    refused(canary(owner_client), 409, code="scaled_to_zero")


def test_a_canary_runs_beside_the_release_and_is_never_the_target(app, members, owner_client):
    v1 = running(app, members, quantity=3)
    response = canary(owner_client, 10)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["release"]["version"] == 2 and body["deployment"]["kind"] == "canary"
    assert body["canary"]["release"] == 2 and body["canary"]["weight"] == 10 and body["canary"]["state"] == "active"
    assert target_release(app) == v1
    state = owner_client.get(f"{BASE}/").json()["state"]
    assert state["release"] == 1 and state["target_release"] == 1 and state["deploying"] is True
    assert state["canary"] == {
        "release": 2,
        "weight": 10,
        "processes": {"web": {"quantity": 1, "size": "small", "running": {}}},
    }
    shown = owner_client.get(f"{BASE}/canary/").json()
    assert shown["release"] == 2 and shown["weight"] == 10 and shown["processes"]["web"]["quantity"] == 1
    audit = AuditEvent.objects.get(action="release.canary")
    assert audit.changes["weight"] == 10 and audit.changes["process_types"] == ["web"]


def test_changes_that_make_a_release_wait_for_the_canary_to_end_and_say_why(app, members, owner_client):
    running(app, members)
    ConfigVar.objects.create(app=app, key="GREETING", value="hello")
    assert canary(owner_client).status_code == 201
    releases = Release.objects.count()
    new = owner_client.post(f"{BASE}/releases/", {"image": "berth-test/web:v3", "process_types": WEB}, format="json")
    refused(new, 409, code="canary_active", says="promote or abort the canary first")
    assert "compared with" in new.json()["message"]
    config = owner_client.patch(f"{BASE}/config/", {"config": {"GREETING": "hi"}}, format="json")
    refused(config, 409, code="canary_active", says="keeps the config it was made with")
    assert ConfigVar.objects.get(app=app, key="GREETING").value == "hello"  # refused before anything was written
    rollback = owner_client.post(f"{BASE}/releases/rollback/", {"version": 1}, format="json")
    refused(rollback, 409, code="canary_active", says="promote or abort")
    refused(canary(owner_client, 20, image="berth-test/web:v3"), 409, code="canary_active", says="one canary at a time")
    assert Release.objects.count() == releases


def test_scaling_during_a_canary_scales_the_release_and_the_canary_follows(app, members, owner_client):
    running(app, members, quantity=3)
    canary(owner_client, 50)
    response = owner_client.patch(f"{BASE}/formation/", {"formation": {"web": {"quantity": 4}}}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["deployment"]["release"] == 1
    state = owner_client.get(f"{BASE}/").json()["state"]
    assert state["processes"]["web"]["quantity"] == 4 and state["canary"]["processes"]["web"]["quantity"] == 2


def test_the_weight_changes_within_1_to_99(app, members, owner_client):
    running(app, members, quantity=4)
    canary(owner_client, 10)
    refused(owner_client.patch(f"{BASE}/canary/", {"weight": 0}, format="json"), 400, field="weight")
    refused(owner_client.patch(f"{BASE}/canary/", {"weight": "ten"}, format="json"), 400, field="weight")
    response = owner_client.patch(f"{BASE}/canary/", {"weight": 50}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["canary"]["weight"] == 50 and response.json()["deployment"]["kind"] == "canary"
    assert owner_client.get(f"{BASE}/canary/").json()["processes"]["web"]["quantity"] == 2


def test_promote_waits_for_the_canary_to_be_deployed_then_makes_it_the_target(app, members, owner_client):
    running(app, members)
    canary(owner_client)
    refused(owner_client.post(f"{BASE}/canary/promote/"), 409, code="canary_deploying", says="still being deployed")
    done(Deployment.Kind.CANARY)
    response = owner_client.post(f"{BASE}/canary/promote/")
    assert response.status_code == 202, response.content
    assert response.json()["deployment"]["kind"] == "promote" and response.json()["deployment"]["release"] == 2
    assert response.json()["canary"]["state"] == "promoted"
    assert target_release(app).version == 2
    assert owner_client.get(f"{BASE}/canary/").status_code == 404
    assert owner_client.get(f"{BASE}/").json()["state"]["canary"] is None
    refused(owner_client.post(f"{BASE}/canary/abort/"), 409, code="no_canary")
    assert AuditEvent.objects.filter(action="canary.promote").exists()


def test_abort_ends_the_canary_and_releases_are_allowed_again(app, members, owner_client):
    running(app, members)
    canary(owner_client)
    response = owner_client.post(f"{BASE}/canary/abort/")
    assert response.status_code == 202, response.content
    assert response.json()["deployment"]["kind"] == "abort" and response.json()["canary"]["state"] == "aborted"
    assert target_release(app).version == 1
    assert AuditEvent.objects.filter(action="canary.abort").exists()
    new = owner_client.post(f"{BASE}/releases/", {"image": "berth-test/web:v3", "process_types": WEB}, format="json")
    assert new.status_code == 201, new.content


def test_a_viewer_sees_the_canary_but_cannot_change_it(app, members, owner_client, client_for):
    running(app, members)
    canary(owner_client)
    viewer = client_for(members[Role.VIEWER])
    assert viewer.get(f"{BASE}/canary/").status_code == 200
    refused(viewer.post(f"{BASE}/canary/abort/"), 403, code="permission_denied")
    assert Canary.objects.get().state == Canary.State.ACTIVE
