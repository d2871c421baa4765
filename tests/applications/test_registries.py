"""Registry credentials: which registry an image names, and the org's logins to registries, kept secret."""

import json

import pytest
from django.db import connection

from berth.applications.models import RegistryCredential
from berth.applications.registries import PullPolicy, pull_policy, registry_credential_set, registry_of
from berth.audit.models import AuditEvent
from berth.core.errors import Invalid
from berth.deployments.services import release_create
from berth.tenancy.roles import Role
from tests.factories import AppFactory, OrganizationFactory, SizeFactory

PASSWORD = "hunter2-but-longer-7f3a"


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("nginx", "docker.io"),
        ("nginx:1.27", "docker.io"),
        ("library/nginx:1.27", "docker.io"),
        ("team/app@sha256:" + "a" * 64, "docker.io"),
        ("docker.io/library/nginx", "docker.io"),
        ("index.docker.io/team/app:1", "docker.io"),
        ("registry.example.com/team/app:1.2", "registry.example.com"),
        ("Registry.Example.com/team/app", "registry.example.com"),
        ("10.250.2.2:5000/berth/web:v2", "10.250.2.2:5000"),
        ("myhost:5000/app", "myhost:5000"),
        ("localhost/app", "localhost"),
        ("localhost:5000/app:v1", "localhost:5000"),
        # Neither a dot nor a port nor localhost: a Docker Hub namespace, not a registry.
        ("myregistry/app:1", "docker.io"),
        ("app@sha256:" + "b" * 64, "docker.io"),
    ],
)
def test_registry_of_follows_dockers_rule(image, registry):
    assert registry_of(image) == registry


@pytest.fixture
def owner(members):
    return members[Role.OWNER]


@pytest.mark.django_db
def test_set_creates_then_replaces_and_audits_without_the_password(organization, owner):
    first, created = registry_credential_set(
        actor=owner, organization=organization, registry="Registry.Example.com", username="ci", password="old-pass"
    )
    again, created_again = registry_credential_set(
        actor=owner, organization=organization, registry="registry.example.com", username="deploy", password=PASSWORD
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.registry == "registry.example.com"
    stored = RegistryCredential.objects.get()
    assert (stored.username, stored.password) == ("deploy", PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM applications_registrycredential")
        [(raw,)] = cursor.fetchall()
    assert PASSWORD not in raw  # encrypted at rest
    events = AuditEvent.objects.filter(action__startswith="registry_credential").order_by("id")
    assert [e.action for e in events] == ["registry_credential.create", "registry_credential.replace"]
    assert events[1].changes == {"registry": "registry.example.com", "username": "deploy"}
    recorded = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert PASSWORD not in recorded and "old-pass" not in recorded


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("registry", "username", "password", "field"),
    [
        ("https://registry.example.com", "ci", "x", "registry"),
        ("registry.example.com/team", "ci", "x", "registry"),
        ("myregistry", "ci", "x", "registry"),  # an image could never name it: see registry_of
        ("registry.example.com", "c:i", "x", "username"),
        ("registry.example.com", "ci", "", "password"),
    ],
)
def test_set_refuses_what_no_pull_could_use(organization, owner, registry, username, password, field):
    with pytest.raises(Invalid) as refused:
        registry_credential_set(
            actor=owner, organization=organization, registry=registry, username=username, password=password
        )
    assert refused.value.field == field
    assert not RegistryCredential.objects.exists()


@pytest.mark.django_db
def test_pull_policy_uses_the_apps_org_and_the_images_registry(organization, owner):
    SizeFactory(is_default=True)
    app = AppFactory(organization=organization)
    other_org = OrganizationFactory()
    # The other organization's login to the same registry is stored first, so it would be found first.
    for registry in ("registry.example.com", "10.250.2.2:5000"):
        registry_credential_set(
            actor=None, organization=other_org, registry=registry, username="them", password="theirs"
        )
    registry_credential_set(
        actor=owner, organization=organization, registry="10.250.2.2:5000", username="ci", password=PASSWORD
    )
    private, _ = release_create(actor=owner, app=app, image="10.250.2.2:5000/berth/web:v2")
    foreign, _ = release_create(actor=owner, app=app, image="registry.example.com/team/app:1")
    hub, _ = release_create(actor=owner, app=app, image="berth-test/web:v1")
    assert pull_policy(private) == PullPolicy(login={"username": "ci", "password": PASSWORD}, always_pull=True)
    # Another org's login is never lent, and its registry's images are pulled for each organization.
    assert pull_policy(foreign) == PullPolicy(login=None, always_pull=True)
    assert pull_policy(hub) == PullPolicy(login=None, always_pull=False)


@pytest.mark.django_db
def test_the_api_never_shows_the_password(owner_client, organization, caplog):
    url = f"/api/v1/orgs/{organization.slug}/registry-credentials/"
    body = {"registry": "10.250.2.2:5000", "username": "ci", "password": PASSWORD}
    created = owner_client.post(url, body, format="json")
    replaced = owner_client.post(url, {**body, "username": "ci2"}, format="json")
    assert (created.status_code, replaced.status_code) == (201, 200)
    assert replaced.json()["id"] == created.json()["id"]
    listed = owner_client.get(url)
    assert [(c["registry"], c["username"]) for c in listed.json()["results"]] == [("10.250.2.2:5000", "ci2")]
    detail = owner_client.get(f"{url}{created.json()['id']}/")
    for response in (created, replaced, listed, detail):
        assert PASSWORD not in response.content.decode()
        assert "password" not in json.dumps(response.json())
    assert PASSWORD not in caplog.text
    assert owner_client.delete(f"{url}{created.json()['id']}/").status_code == 204
    assert owner_client.get(url).json()["results"] == []
    assert AuditEvent.objects.filter(action="registry_credential.delete").exists()


@pytest.mark.django_db
def test_the_api_names_the_field_at_fault(owner_client, organization):
    url = f"/api/v1/orgs/{organization.slug}/registry-credentials/"
    response = owner_client.post(url, {"registry": "http://x.io", "username": "ci", "password": "p"}, format="json")
    assert response.status_code == 400
    assert "registry" in response.json()["fields"]
