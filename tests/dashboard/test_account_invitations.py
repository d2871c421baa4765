"""Accepting an invitation from the link in its email: signed in, signed out (sign in or sign up), and
links that cannot be used."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from berth.audit.models import AuditEvent
from berth.tenancy.models import Invitation, Membership, User
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from tests.factories import PASSWORD, UserFactory

INVITED = "new.person@example.test"
NEW_PASSWORD = "a quite different passphrase"


@pytest.fixture
def link(organization, members, django_capture_on_commit_callbacks) -> str:
    """The path of the link emailed to INVITED, invited to acme as a developer by its owner."""
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(actor=members[Role.OWNER], organization=organization, email=INVITED, role=Role.DEVELOPER)
    body = mail.outbox[-1].body
    url = re.search(r"https?://\S+/invitations/\S+/", body).group(0)
    assert url.startswith(django_settings.BERTH_PUBLIC_URL + "/invitations/berth_")
    return urlsplit(url).path


def token_of(link: str) -> str:
    return link.strip("/").split("/")[-1]


def test_the_email_links_to_the_invitation_page(link):
    message = mail.outbox[-1]
    assert message.to == [INVITED]
    assert "Acme" in message.subject
    assert "as developer" in message.body


def test_the_invited_person_signed_in_accepts_and_lands_in_the_organization(link, dashboard_client):
    person = UserFactory(email=INVITED)
    client = dashboard_client(person)
    page = client.get(link)
    assert page.status_code == 200
    assert "Join Acme" in page.text and "Developer" in page.text
    assert "Accept and join Acme" in page.text
    response = client.post(link)
    assert response.status_code == 302
    assert response["Location"] == "/orgs/acme/"
    assert Membership.objects.get(user=person, organization__slug="acme").role == Role.DEVELOPER
    assert "You joined Acme as developer." in client.get(response["Location"]).text
    event = AuditEvent.objects.get(action="invitation.accept")
    assert event.source == AuditEvent.Source.DASHBOARD and event.actor == person
    # The link is used up.
    again = client.get(link)
    assert again.status_code == 404
    assert "This invitation link does not work" in again.text


def test_accepting_needs_a_post(link, dashboard_client):
    person = UserFactory(email=INVITED)
    dashboard_client(person).get(link)
    assert not Membership.objects.filter(user=person).exists()


def test_a_visitor_is_offered_to_sign_in_or_up_and_signing_in_comes_back(link, client):
    person = UserFactory(email=INVITED)
    page = client.get(link)
    assert page.status_code == 200
    assert "Join Acme" in page.text
    assert f'href="/signin/?next={link}"' in page.text
    assert f'href="/signup/?invitation={token_of(link)}"' in page.text
    refused = client.post(link)
    assert refused.status_code == 302 and refused["Location"].startswith("/signin/")
    assert not Membership.objects.filter(user=person).exists()

    signed_in = client.post("/signin/", {"email": INVITED, "password": PASSWORD, "next": link})
    assert signed_in["Location"] == link
    assert client.post(link)["Location"] == "/orgs/acme/"
    assert Membership.objects.filter(user=person, organization__slug="acme").exists()


def test_a_visitor_signs_up_with_the_invitation_even_when_sign_up_is_closed(link, client):
    assert django_settings.BERTH_SIGNUP == "invite"
    page = client.get("/signup/", {"invitation": token_of(link)})
    assert page.status_code == 200
    assert f'value="{INVITED}"' in page.text and "disabled" in page.text
    # The address is the invitation's, whatever is posted for it.
    response = client.post(
        "/signup/",
        {"invitation": token_of(link), "email": "someone.else@example.test", "password": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/orgs/acme/"
    user = User.objects.get(email=INVITED)
    assert not User.objects.filter(email="someone.else@example.test").exists()
    assert Membership.objects.get(user=user, organization__slug="acme").role == Role.DEVELOPER
    assert client.get("/orgs/acme/").status_code == 200
    assert Invitation.objects.get(email=INVITED).accepted_by == user


def test_a_refused_invited_sign_up_makes_no_account(link, client):
    response = client.post("/signup/", {"invitation": token_of(link), "password": "short"})
    assert response.status_code == 400
    assert "This password is too short." in response.text
    assert not User.objects.filter(email=INVITED).exists()
    assert Invitation.objects.get(email=INVITED).accepted_at is None


def test_someone_else_signed_in_cannot_accept(link, dashboard_client, outsider):
    client = dashboard_client(outsider)
    page = client.get(link)
    assert page.status_code == 200
    assert f"This invitation is for {INVITED}" in page.text
    assert "Accept and join" not in page.text
    forged = client.post(link)
    assert forged.status_code == 404
    assert "This invitation cannot be accepted" in forged.text
    assert not Membership.objects.filter(user=outsider, organization__slug="acme").exists()


def test_an_expired_invitation_says_so(link, client):
    Invitation.objects.filter(email=INVITED).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client.get(link)
    assert response.status_code == 400
    assert "This invitation has expired" in response.text
    assert client.get("/signup/", {"invitation": token_of(link)}).status_code == 400


@pytest.mark.parametrize("token", ["nonsense", "berth_000000000000_" + "a" * 43])
def test_an_unknown_token_is_a_404_page(client, db, token):
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 404
    assert "This invitation link does not work" in response.text
    assert "<main" in response.text  # the dashboard's page


def test_a_revoked_invitation_link_no_longer_works(link):
    Invitation.objects.filter(email=INVITED).delete()
    assert Client().get(link).status_code == 404


def test_the_invitation_page_reads_a_fixed_number_of_queries(link, dashboard_client, django_assert_num_queries):
    client = dashboard_client(UserFactory(email=INVITED))
    # The session, the user, the invitation with its organization and inviter, the person's role in it,
    # the organization switcher.
    with django_assert_num_queries(5):
        assert client.get(link).status_code == 200
    with django_assert_num_queries(1):  # a visitor: the invitation only
        assert Client().get(link).status_code == 200
