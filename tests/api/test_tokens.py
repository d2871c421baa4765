"""Personal API tokens: hashed at rest, shown once, revocable at once, expiring, recording last use."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from berth.audit.models import AuditEvent
from berth.tenancy.models import ApiToken


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def created(owner_client):
    response = owner_client.post("/api/v1/tokens/", {"name": "ci deploys"}, format="json")
    assert response.status_code == 201
    return response.json()


@pytest.mark.django_db
def test_token_is_shown_once_and_works(created, owner_client):
    token = created["token"]
    assert token.startswith("berth_") and token.startswith(created["prefix"])
    assert bearer(token).get("/api/v1/me/").status_code == 200
    listed = owner_client.get(f"/api/v1/tokens/{created['id']}/").json()
    assert "token" not in listed and listed["prefix"] == created["prefix"]


@pytest.mark.django_db
def test_database_holds_no_usable_token(created):
    token = created["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_apitoken")
        rows = cursor.fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    assert token not in stored
    assert token.split("_", 2)[2] not in stored  # not even the secret part
    row = ApiToken.objects.get(pk=created["id"])
    # What is stored does not authenticate when presented.
    assert bearer(row.digest).get("/api/v1/me/").status_code == 401
    assert bearer(f"{row.prefix}_{row.digest[:43]}").get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_revoked_token_stops_working_at_once(created, owner_client):
    client = bearer(created["token"])
    assert client.get("/api/v1/me/").status_code == 200
    assert owner_client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"
    assert AuditEvent.objects.filter(action="api_token.revoke", target_id=str(created["id"])).exists()


@pytest.mark.django_db
def test_a_token_can_revoke_itself(created):
    client = bearer(created["token"])
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_expired_token_is_refused(owner_client):
    soon = (timezone.now() + timedelta(minutes=5)).isoformat()
    created = owner_client.post("/api/v1/tokens/", {"name": "short", "expires_at": soon}, format="json").json()
    ApiToken.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(created["token"]).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"


@pytest.mark.django_db
def test_expiry_in_the_past_is_refused(owner_client):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    before = ApiToken.objects.count()
    response = owner_client.post("/api/v1/tokens/", {"name": "old", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["fields"]
    assert ApiToken.objects.count() == before


@pytest.mark.django_db
def test_inactive_user_token_is_refused(created, members):
    from berth.tenancy.roles import Role

    members[Role.OWNER].is_active = False
    members[Role.OWNER].save()
    assert bearer(created["token"]).get("/api/v1/me/").json()["error"] == "user_inactive"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Bearer undefined",
        "Bearer null",
        "Bearer ",
        "Bearer a b",
        "Bearer berth_000000000000_" + "x" * 43,
        "Token abc",
        "Basic dXNlcjpwYXNz",
        "Bearer berth_" + "é" * 20,
    ],
)
def test_bad_authorization_headers_get_401(header, db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"] in {"invalid_token", "not_authenticated"}


@pytest.mark.django_db
def test_last_used_is_recorded(created):
    assert ApiToken.objects.get(pk=created["id"]).last_used_at is None
    bearer(created["token"]).get("/api/v1/me/")
    assert ApiToken.objects.get(pk=created["id"]).last_used_at is not None


@pytest.mark.django_db
def test_session_writes_need_csrf(members):
    from berth.tenancy.roles import Role
    from tests.factories import PASSWORD

    client = APIClient(enforce_csrf_checks=True)
    assert client.login(email=members[Role.OWNER].email, password=PASSWORD)
    assert client.get("/api/v1/orgs/acme/apps/").status_code == 200
    response = client.post("/api/v1/orgs/acme/apps/", {"name": "no-csrf"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
