"""The audit log: every API change is recorded with who, where, what and when; secrets never are."""

import json

import pytest
from django.core import mail

from berth.audit.models import AuditEvent
from berth.tenancy.roles import Role


def changes_via_api(client, organization_slug: str) -> dict:
    """Make one change of each kind through the API; returns the secrets it was handed."""
    base = f"/api/v1/orgs/{organization_slug}"
    token = client.post("/api/v1/tokens/", {"name": "audited"}, format="json").json()
    client.post(f"{base}/apps/", {"name": "shop", "description": "v1"}, format="json")
    client.patch(f"{base}/apps/shop/", {"description": "v2"}, format="json")
    invitation = client.post(f"{base}/invitations/", {"email": "x@example.test", "role": "viewer"}, format="json")
    client.patch(f"{base}/", {"name": "Acme Inc"}, format="json")
    client.delete(f"{base}/apps/shop/")
    client.delete(f"/api/v1/tokens/{token['id']}/")
    client.patch("/api/v1/me/", {"name": "Renamed Person"}, format="json")
    return {"api_token": token["token"], "invitation_token": invitation.json()["token"]}


@pytest.mark.django_db
def test_api_changes_are_recorded_with_actor_org_target_and_ip(owner_client, members, organization):
    owner_client.defaults["REMOTE_ADDR"] = "192.0.2.7"
    changes_via_api(owner_client, organization.slug)
    events = AuditEvent.objects.filter(actor=members[Role.OWNER]).order_by("id")
    assert [e.action for e in events] == [
        "api_token.create",
        "api_token.create",
        "app.create",
        "app.update",
        "invitation.create",
        "organization.update",
        "app.delete",
        "api_token.revoke",
        "user.update",
    ]
    in_org = events.exclude(action__startswith="api_token").exclude(action="user.update")
    assert {(e.organization_slug, e.source, e.ip_address) for e in in_org} == {("acme", "api", "192.0.2.7")}
    update = events.get(action="app.update")
    assert update.changes == {"description": ["v1", "v2"]}
    assert update.target_type == "applications.app" and update.target_repr == "acme/shop"
    assert update.actor_email == members[Role.OWNER].email
    assert update.created_at is not None


@pytest.mark.django_db
def test_secrets_never_reach_the_audit_log_or_logs(owner_client, organization, caplog):
    secrets = changes_via_api(owner_client, organization.slug)
    recorded = json.dumps(list(AuditEvent.objects.values()), default=str)
    for secret in secrets.values():
        assert secret not in recorded
        assert secret not in caplog.text
    assert not mail.outbox or all(secrets["api_token"] not in m.body for m in mail.outbox)


@pytest.mark.django_db
def test_forwarded_for_is_trusted_only_behind_configured_proxies(owner_client, organization, settings):
    owner_client.defaults.update(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.4")
    owner_client.post("/api/v1/orgs/acme/apps/", {"name": "direct"}, format="json")
    settings.BERTH_NUM_PROXIES = 1
    owner_client.post("/api/v1/orgs/acme/apps/", {"name": "proxied"}, format="json")
    ips = dict(AuditEvent.objects.filter(action="app.create").values_list("target_repr", "ip_address"))
    assert ips == {"acme/direct": "10.0.0.2", "acme/proxied": "198.51.100.4"}


@pytest.mark.django_db
def test_members_read_only_their_own_organizations_log(owner_client, outsider, organization, client_for):
    changes_via_api(owner_client, organization.slug)
    client_for(outsider).post("/api/v1/orgs/globex/apps/", {"name": "theirs"}, format="json")
    listed = owner_client.get("/api/v1/orgs/acme/audit-events/?page_size=100").json()["results"]
    assert listed and {event["organization"] for event in listed} == {"acme"}
    filtered = owner_client.get("/api/v1/orgs/acme/audit-events/?action=app.delete").json()["results"]
    assert [event["target_repr"] for event in filtered] == ["acme/shop"]
