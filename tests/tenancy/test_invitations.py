"""Invitations: created by managers, accepted with the emailed token by the invited address only."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from berth.tenancy.models import Invitation, Membership
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import UserFactory

INVITES = "/api/v1/orgs/acme/invitations/"


@pytest.fixture
def invited(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(INVITES, {"email": "New.Person@Example.test", "role": "developer"}, format="json")
    assert response.status_code == 201
    return response.json()


@pytest.mark.django_db
def test_invitation_is_emailed_and_accepted(invited):
    assert invited["email"] == "new.person@example.test"
    assert len(mail.outbox) == 1 and invited["token"] in mail.outbox[0].body
    person = UserFactory(email="new.person@example.test")
    client = token_client(person)
    response = client.post("/api/v1/invitations/accept/", {"token": invited["token"]}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "developer"
    assert client.get("/api/v1/orgs/acme/apps/").status_code == 200
    # A used token does not work twice.
    assert client.post("/api/v1/invitations/accept/", {"token": invited["token"]}, format="json").status_code == 404


@pytest.mark.django_db
def test_invitation_token_is_not_stored(invited):
    invitation = Invitation.objects.get(pk=invited["id"])
    assert invited["token"] not in invitation.token_digest
    assert "token" not in token_client(UserFactory()).get(f"{INVITES}{invited['id']}/").json()


@pytest.mark.django_db
def test_someone_else_cannot_accept(invited):
    stranger = token_client(UserFactory(email="stranger@example.test"))
    response = stranger.post("/api/v1/invitations/accept/", {"token": invited["token"]}, format="json")
    assert response.status_code == 404
    assert not Membership.objects.filter(user__email="stranger@example.test").exists()


@pytest.mark.django_db
def test_expired_invitation_is_refused(invited):
    Invitation.objects.filter(pk=invited["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    person = token_client(UserFactory(email="new.person@example.test"))
    response = person.post("/api/v1/invitations/accept/", {"token": invited["token"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "expired"


@pytest.mark.django_db
def test_duplicate_invitation_and_existing_member_are_conflicts(invited, owner_client, members):
    again = owner_client.post(INVITES, {"email": "new.person@example.test", "role": "viewer"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "already_invited"
    member = owner_client.post(INVITES, {"email": members[Role.VIEWER].email, "role": "viewer"}, format="json")
    assert member.status_code == 409 and member.json()["error"] == "already_member"


@pytest.mark.django_db
def test_only_an_owner_may_invite_an_owner(members):
    admin = token_client(members[Role.ADMIN])
    response = admin.post(INVITES, {"email": "boss@example.test", "role": "owner"}, format="json")
    assert response.status_code == 403
    assert not Invitation.objects.filter(email="boss@example.test").exists()


@pytest.mark.django_db
def test_revoked_invitation_cannot_be_accepted(invited, owner_client):
    assert owner_client.delete(f"{INVITES}{invited['id']}/").status_code == 204
    person = token_client(UserFactory(email="new.person@example.test"))
    assert person.post("/api/v1/invitations/accept/", {"token": invited["token"]}, format="json").status_code == 404
