"""Bad input to one-off runs and release commands gets a 4xx naming the field, and changes nothing; a viewer
may read runs but not start one, and another organization's runs are a 404 (docs/runs.md)."""

import pytest
from django.test import override_settings

from berth.applications.models import App, Release
from berth.audit.models import AuditEvent
from berth.billing.models import Quota
from berth.deployments.models import Deployment, Run
from berth.deployments.services import release_create
from berth.fleet.models import Size
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, HostFactory, MembershipFactory, OrganizationFactory, SizeFactory

BASE = "/api/v1/orgs/acme/apps/shop"


@pytest.fixture
def app(organization, members):
    app = AppFactory(organization=organization, name="shop")
    HostFactory(memory_mb=2048)
    SizeFactory(name="small", memory_mb=64, is_default=True)
    SizeFactory(name="large", memory_mb=512)
    release, _ = release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1")
    App.objects.filter(pk=app.pk).update(current_release=release)
    app.refresh_from_db()
    return app


def counts():
    return Run.objects.count(), Release.objects.count(), Deployment.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "command", "required"),
        ({"command": ""}, "command", "Give the command"),
        ({"command": []}, "command", "Give the command"),
        ({"command": "   "}, "command", "Give the command"),
        ({"command": 42}, "command", "string or a list"),
        ({"command": ["echo", 1]}, "command", "string or a list"),
        ({"command": "migrate; rm -rf /"}, "command", "shell operators"),
        ({"command": "echo 'unbalanced"}, "command", "cannot be split"),
        ({"command": ["x"] * 65}, "command", "at most 64 arguments"),
        ({"command": ["x" * 1025]}, "command", "1024 characters"),
        ({"command": ["echo", "a\x00b"]}, "command", "at most 64"),
        ({"command": "true", "size": "enormous"}, "size", "no size named"),
        ({"command": "true", "size": 3}, "size", "name of a size"),
        ({"command": "true", "timeout": 0}, "timeout", "from 1 to"),
        ({"command": "true", "timeout": 6 * 3600 + 1}, "timeout", "from 1 to"),
        ({"command": "true", "timeout": "60"}, "timeout", "whole number"),
        ({"command": "true", "timeout": 1.5}, "timeout", "whole number"),
        ({"command": "true", "timeout": True}, "timeout", "whole number"),
        ({"command": "true", "tty": True}, "tty", "not accepted"),
    ],
)
def test_bad_run_input_is_refused_naming_the_field(app, owner_client, body, field, reason):
    before = counts()
    response = owner_client.post(f"{BASE}/runs/", body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert field in fields and reason in " ".join(fields[field]), fields
    assert counts() == before


@pytest.mark.django_db
def test_a_run_is_queued_with_its_defaults_and_audited_without_its_arguments(
    app, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = owner_client.post(f"{BASE}/runs/", {"command": "migrate --password s3cret"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["command"] == ["migrate", "--password", "s3cret"]
    assert body["size"] == "small" and body["timeout_s"] == 30 * 60 and body["release"] == 1
    assert body["kind"] == "run" and body["exit_code"] is None and len(sent) == 1
    event = AuditEvent.objects.get(action="run.create")
    assert event.changes == {"program": "migrate", "size": "small", "timeout_s": 1800}
    assert "s3cret" not in str(event.changes) and "s3cret" not in event.target_repr


@pytest.mark.django_db
@override_settings(BERTH_RUN_MAX_TIMEOUT_SECONDS=120)
def test_the_longest_timeout_is_a_setting(app, owner_client):
    assert owner_client.post(f"{BASE}/runs/", {"command": "true", "timeout": 121}, format="json").status_code == 400
    response = owner_client.post(f"{BASE}/runs/", {"command": "true", "timeout": 120, "size": "large"}, format="json")
    assert response.status_code == 202 and response.json()["size"] == "large"


@pytest.mark.django_db
def test_an_app_that_runs_no_release_cannot_run_anything(organization, members, owner_client):
    AppFactory(organization=organization, name="shop")
    SizeFactory(is_default=True)
    response = owner_client.post(f"{BASE}/runs/", {"command": "true"}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "no_release"
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_viewer_reads_runs_but_cannot_start_one_and_another_org_sees_nothing(app, members):
    size = Size.objects.get(name="small")
    run = Run.objects.create(app=app, release=app.current_release, command=["true"], size=size, timeout_s=9)
    viewer = token_client(members[Role.VIEWER])
    assert viewer.get(f"{BASE}/runs/{run.pk}/").status_code == 200
    refused = viewer.post(f"{BASE}/runs/", {"command": "true"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"
    # Another organization's member, even naming its own org with this app's run id, finds nothing.
    other = MembershipFactory(organization=OrganizationFactory(slug="globex"), role=Role.OWNER)
    AppFactory(organization=other.organization, name="shop")
    stranger = token_client(other.user)
    assert stranger.get(f"{BASE}/runs/{run.pk}/").status_code == 404
    assert stranger.get(f"/api/v1/orgs/globex/apps/shop/runs/{run.pk}/").status_code == 404
    assert stranger.get("/api/v1/orgs/globex/apps/shop/runs/").json()["results"] == []
    assert Run.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"release_command": "migrate && seed"}, "release_command", "shell operators"),
        ({"release_command": {"run": "x"}}, "release_command", "string or a list"),
        ({"release_command": "migrate", "release_timeout": 0}, "release_timeout", "from 1 to"),
        ({"release_command": "migrate", "release_timeout": "5"}, "release_timeout", "whole number"),
        ({"release_timeout": 60}, "release_timeout", "needs a release command"),
        ({"release_command": "migrate", "canary_weight": 10}, "release_command", "canary has no release command"),
        ({"process_types": {"run": {}}}, "process_types.run", "one-off runs"),
    ],
)
def test_bad_release_command_input_is_refused_naming_the_field(app, owner_client, body, field, reason):
    before = counts()
    response = owner_client.post(f"{BASE}/releases/", {"image": "berth-test/web:v2", **body}, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert field in fields and reason in " ".join(fields[field]), fields
    assert counts() == before


@pytest.mark.django_db
def test_a_release_command_is_stored_and_kept_by_config_changes_and_rollbacks(app, owner_client):
    response = owner_client.post(
        f"{BASE}/releases/", {"image": "berth-test/web:v2", "release_command": "migrate --noinput"}, format="json"
    )
    assert response.status_code == 201, response.content
    stored = {"command": ["migrate", "--noinput"], "timeout_s": 1800}
    assert response.json()["release"]["release_command"] == stored
    assert owner_client.patch(f"{BASE}/config/", {"config": {"A": "1"}}, format="json").status_code == 202
    assert Release.objects.get(app=app, version=3).release_command == stored
    assert owner_client.post(f"{BASE}/releases/rollback/", {"version": 1}, format="json").status_code == 201
    assert Release.objects.get(app=app, version=4).release_command == {}


@pytest.mark.django_db
def test_runs_under_way_count_in_the_organizations_quota(app, owner_client):
    # The formation asks for one web container (64 MB): room for one run of the small size, and not more.
    Quota.objects.create(organization=app.organization, max_containers=2, max_memory_mb=64 + 512)
    first = owner_client.post(f"{BASE}/runs/", {"command": "true"}, format="json")
    assert first.status_code == 202, first.content
    refused = owner_client.post(f"{BASE}/runs/", {"command": "true"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "quota_exceeded"
    assert "3 containers" in refused.json()["fields"]["size"][0] and Run.objects.count() == 1
    # Once the first has ended, a run fits again; memory is counted too.
    Run.objects.filter(pk=first.json()["id"]).update(state=Run.State.SUCCEEDED)
    Quota.objects.filter(organization=app.organization).update(max_memory_mb=64 + 63)
    too_big = owner_client.post(f"{BASE}/runs/", {"command": "true"}, format="json")
    assert too_big.status_code == 403 and "128 MB" in too_big.json()["fields"]["size"][0]
    Quota.objects.filter(organization=app.organization).update(max_memory_mb=64 + 64)
    assert owner_client.post(f"{BASE}/runs/", {"command": "true"}, format="json").status_code == 202
