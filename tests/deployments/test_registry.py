"""Pulling images from a password-protected registry: the test bed's registry at 10.250.2.2:5000.

Host h2 runs the registry (testbed/hosts.sh registry-up) and pushed berth-test/web:v2 into it as
10.250.2.2:5000/berth/web:v2. Deploys here are pinned to h1, whose engine holds no reference to that
image, so h1's engine must pull it over the test bed's network with the organization's credential.
"""

import base64
import contextlib
import json
import logging
import secrets
import urllib.request
from pathlib import Path

import docker
import pytest
from docker import errors as docker_errors

from berth.applications.models import Release
from berth.applications.registries import registry_credential_set
from berth.audit.models import AuditEvent
from berth.deployments.models import Deployment
from berth.deployments.services import release_create
from berth.fleet.models import DockerHost
from berth.tenancy.roles import Role
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory
from tests.fleet import WEB
from tests.testbed import HOST_INDICES, host_by_index, hosts_script

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker

REGISTRY = "10.250.2.2:5000"
REPOSITORY = f"{REGISTRY}/berth/web"
IMAGE = f"{REPOSITORY}:v2"
USERNAME = "berth"
PASSWORD_FILE = Path("/var/lib/berth-testbed/registry/password")  # written by testbed/hosts.sh
H1 = host_by_index(HOST_INDICES[0])  # the first host this run uses


@pytest.fixture(scope="module")
def registry_password(testbed_hosts):
    hosts_script("registry-up")
    return PASSWORD_FILE.read_text().strip()


def manifest_digest(password: str) -> str:
    """The registry's own digest of berth/web:v2, asked over its HTTP API."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/berth/web/manifests/v2",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json",
            "Authorization": "Basic " + base64.b64encode(f"{USERNAME}:{password}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a fixed http:// URL
        return response.headers["Docker-Content-Digest"]


def h1_references() -> list[str]:
    """Every tag and digest reference h1's engine holds for the registry's repository."""
    client = docker.APIClient(base_url=H1.engine_url, timeout=30)
    try:
        images = client.images(all=True)
    finally:
        client.close()
    references = [r for image in images for r in (image.get("RepoTags") or []) + (image.get("RepoDigests") or [])]
    return [r for r in references if r.startswith((f"{REPOSITORY}:", f"{REPOSITORY}@"))]


def forget_on_h1() -> None:
    """Untag the registry's image on h1 (its layers stay: berth-test/web:v2 shares them), so a deploy must pull."""
    client = docker.APIClient(base_url=H1.engine_url, timeout=30)
    try:
        for reference in h1_references():
            with contextlib.suppress(docker_errors.NotFound):  # untagging the last tag drops the digest too
                client.remove_image(reference)
        with pytest.raises(docker_errors.ImageNotFound):
            client.inspect_image(IMAGE)
    finally:
        client.close()


@pytest.fixture
def on_h1_only(fleet, registry_password):
    """Placement may only choose h1 (h2 is cordoned), and h1 must pull the image."""
    DockerHost.objects.exclude(name=f"test-{H1.name}").update(state=DockerHost.State.CORDONED)
    forget_on_h1()
    yield
    forget_on_h1()


@pytest.fixture
def app(tenant):
    return AppFactory(organization=tenant.memberships.get().organization, name="private")


def deploy(tenant, app) -> tuple[Release, Deployment]:
    release, deployment = release_create(actor=tenant, app=app, image=IMAGE, process_types=WEB)
    run_deployments(app)
    deployment.refresh_from_db()
    release.refresh_from_db()
    return release, deployment


def everything_recorded(deployment: Deployment) -> str:
    """All text Berth kept about a deployment and its org: the error, the steps, the audit log."""
    return json.dumps(
        {
            "error": deployment.error,
            "steps": [s.message for s in deployment.steps.all()],
            "audit": list(AuditEvent.objects.values()),
        },
        default=str,
    )


def test_a_private_image_is_pulled_with_the_orgs_credential(on_h1_only, tenant, app, registry_password, caplog):
    registry_credential_set(
        actor=tenant, organization=app.organization, registry=REGISTRY, username=USERNAME, password=registry_password
    )
    with caplog.at_level(logging.DEBUG):
        release, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    [container] = live(app)
    assert container.host.name == f"test-{H1.name}"
    assert fetch(container) == (200, "web v2\n")
    digest = manifest_digest(registry_password)
    assert digest.startswith("sha256:")
    assert release.image_digest == container.image_digest == digest
    assert f"{REPOSITORY}@{digest}" in h1_references()  # h1's engine pulled it from the registry
    assert registry_password not in everything_recorded(deployment)
    assert registry_password not in caplog.text


def test_a_wrong_password_fails_the_deployment_with_the_registrys_answer(on_h1_only, tenant, app, caplog):
    wrong = f"wrong-{secrets.token_hex(12)}"
    registry_credential_set(
        actor=tenant, organization=app.organization, registry=REGISTRY, username=USERNAME, password=wrong
    )
    with caplog.at_level(logging.DEBUG):
        release, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.FAILED
    assert f"Image {IMAGE} was pulled again for this organization and could not be pulled" in deployment.error
    assert f"as {USERNAME}: unauthorized: authentication required" in deployment.error
    assert live(app) == []
    assert release.image_digest == ""
    assert not h1_references()
    assert wrong not in everything_recorded(deployment)
    assert wrong not in caplog.text


def test_without_a_credential_the_registry_refuses(on_h1_only, tenant, app, registry_password, tmp_path, monkeypatch):
    # The right login in two places Berth must never take it from: another organization, and the
    # worker's own Docker client configuration (docker-py would send it if Berth passed no auth).
    registry_credential_set(
        actor=None, organization=OrganizationFactory(), registry=REGISTRY, username=USERNAME, password=registry_password
    )
    login = base64.b64encode(f"{USERNAME}:{registry_password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {REGISTRY: {"auth": login}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.FAILED
    assert "without credentials" in deployment.error and "no basic auth credentials" in deployment.error
    assert live(app) == []
    assert not h1_references()


def test_another_organizations_private_image_on_the_host_is_not_lent(
    on_h1_only, tenant, app, registry_password, caplog
):
    """Org A's private image stays in h1's image store after A's deploy; org B, without a login to
    the registry, names the same image: h1 pulls it again for B, and the registry refuses."""
    registry_credential_set(
        actor=tenant, organization=app.organization, registry=REGISTRY, username=USERNAME, password=registry_password
    )
    _, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    assert h1_references(), "org A's pull left the image on h1"
    other = MembershipFactory(organization=OrganizationFactory(slug="other"), role=Role.OWNER).user
    other_app = AppFactory(organization=other.memberships.get().organization, name="borrower")
    _, refused = deploy(other, other_app)
    assert refused.state == Deployment.State.FAILED
    assert "without credentials" in refused.error and "no basic auth credentials" in refused.error
    assert live(other_app) == []
    assert len(live(app)) == 1, "org A's container keeps running"
