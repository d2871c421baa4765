"""Signing in and out, signing up, changing and resetting a password, with Django's test client."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client

from berth.audit.models import AuditEvent
from berth.tenancy.models import User
from tests.factories import PASSWORD, UserFactory

SIGNIN = "/signin/"
SIGNUP = "/signup/"
NEW_PASSWORD = "a quite different passphrase"


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def person(db):
    return UserFactory(email="pat@example.test")


@pytest.fixture
def open_signup(settings):
    settings.BERTH_SIGNUP = "open"


# --- sign in -----------------------------------------------------------------------------------


def test_a_visitor_at_the_root_is_sent_to_sign_in(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == SIGNIN
    page = client.get(SIGNIN)
    assert page.status_code == 200
    assert "Sign in to Berth" in page.text
    assert 'name="email"' in page.text and 'name="password"' in page.text


def test_signing_in_lands_on_the_home_page(client, person):
    response = client.post(SIGNIN, {"email": "Pat@Example.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in(client)


def test_a_wrong_password_keeps_the_email_and_says_so(client, person):
    response = client.post(SIGNIN, {"email": "pat@example.test", "password": "not it"})
    assert response.status_code == 400
    assert "The email or the password is not right." in response.text
    assert 'value="pat@example.test"' in response.text
    assert not signed_in(client)


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(client, person):
    response = client.post(SIGNIN, {"email": "nobody@example.test", "password": PASSWORD})
    assert response.status_code == 400
    assert "The email or the password is not right." in response.text


def test_a_disabled_account_cannot_sign_in(client, person):
    person.is_active = False
    person.save()
    assert client.post(SIGNIN, {"email": person.email, "password": PASSWORD}).status_code == 400
    assert not signed_in(client)


def test_next_is_followed_only_when_it_is_a_path_here(client, person):
    response = client.post(SIGNIN, {"email": person.email, "password": PASSWORD, "next": "/account/tokens/"})
    assert response["Location"] == "/account/tokens/"
    for elsewhere in ["https://evil.test/", "//evil.test/", "/\\evil.test/", "javascript:alert(1)"]:
        other = Client()
        response = other.post(SIGNIN, {"email": person.email, "password": PASSWORD, "next": elsewhere})
        assert response.status_code == 302
        assert response["Location"] == "/", elsewhere


def test_the_sign_in_page_keeps_next_from_a_redirect(client, db):
    response = client.get("/account/tokens/")
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert 'name="next" value="/account/tokens/"' in page.text


def test_a_signed_in_person_opening_sign_in_goes_home(dashboard_client, person):
    response = dashboard_client(person).get(SIGNIN)
    assert response.status_code == 302
    assert response["Location"] == "/"


# --- rate limit --------------------------------------------------------------------------------


@pytest.fixture
def three_a_day(settings):
    # A window of a day: a test never straddles two windows (a minute's window could end mid-test).
    settings.BERTH_SIGNIN_RATE = "3/day"


def test_sign_in_is_refused_with_429_once_the_limit_is_reached_even_with_the_right_password(
    client, person, three_a_day
):
    for _ in range(3):
        assert client.post(SIGNIN, {"email": person.email, "password": "wrong"}).status_code == 400
    response = client.post(SIGNIN, {"email": person.email, "password": PASSWORD})
    assert response.status_code == 429
    assert not signed_in(client)
    assert 0 < int(response["Retry-After"]) <= 86400
    assert "Too many attempts. Wait" in response.text
    assert 'value="pat@example.test"' in response.text  # the form is kept
    assert "Sign in to Berth" in response.text  # in the dashboard's page, not a bare error


def test_the_limit_holds_per_email_whatever_the_address(client, person, three_a_day):
    for number in range(3):
        attempt = client.post(SIGNIN, {"email": person.email, "password": "wrong"}, REMOTE_ADDR=f"10.0.0.{number}")
        assert attempt.status_code == 400
    response = client.post(SIGNIN, {"email": person.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429
    # Another person is not held back by it.
    other = UserFactory(email="sam@example.test")
    assert client.post(SIGNIN, {"email": other.email, "password": PASSWORD}, REMOTE_ADDR="10.0.1.1").status_code == 302


def test_the_limit_holds_per_address_whatever_the_email(client, person, three_a_day):
    for number in range(3):
        attempt = client.post(SIGNIN, {"email": f"guess{number}@example.test", "password": "x"}, REMOTE_ADDR="10.0.0.1")
        assert attempt.status_code == 400
    response = client.post(SIGNIN, {"email": person.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 429
    assert (
        Client().post(SIGNIN, {"email": person.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2").status_code == 302
    )


# --- sign out ----------------------------------------------------------------------------------


def test_sign_out_is_a_post_only(dashboard_client, person):
    client = dashboard_client(person)
    assert client.get("/signout/").status_code == 405
    assert signed_in(client)
    response = client.post("/signout/")
    assert response.status_code == 302
    assert response["Location"] == SIGNIN
    assert not signed_in(client)
    assert client.get("/account/tokens/").status_code == 302
    assert "You are signed out." in client.get(SIGNIN).text


# --- sign up -----------------------------------------------------------------------------------


def test_anyone_signs_up_when_sign_up_is_open(client, db, open_signup):
    page = client.get(SIGNIN)
    assert 'href="/signup/"' in page.text
    response = client.post(SIGNUP, {"email": "New@Example.test", "name": "New Person", "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"  # and from there to creating an organization
    user = User.objects.get(email="new@example.test")
    assert user.name == "New Person"
    assert user.check_password(NEW_PASSWORD)
    assert signed_in(client)
    event = AuditEvent.objects.get(action="user.signup")
    assert event.actor == user
    assert event.source == AuditEvent.Source.DASHBOARD


def test_a_refused_password_is_shown_next_to_it_and_the_rest_is_kept(client, db, open_signup):
    response = client.post(SIGNUP, {"email": "new@example.test", "name": "New Person", "password": "12345"})
    assert response.status_code == 400
    assert "This password is too short." in response.text
    assert "This password is entirely numeric." in response.text
    assert re.search(r'<p class="error" id="id_password_error">[^<]*too short', response.text)
    assert 'value="new@example.test"' in response.text and 'value="New Person"' in response.text
    assert not User.objects.filter(email="new@example.test").exists()


def test_a_password_like_the_email_is_refused(client, db, open_signup):
    response = client.post(SIGNUP, {"email": "margaret.hamilton@example.test", "password": "margaret.hamilton"})
    assert response.status_code == 400
    assert "too similar" in response.text


def test_an_email_with_an_account_cannot_sign_up_again(client, person, open_signup):
    response = client.post(SIGNUP, {"email": "PAT@example.test", "password": NEW_PASSWORD})
    assert response.status_code == 400
    assert "An account with this email already exists" in response.text
    assert User.objects.filter(email="pat@example.test").count() == 1


def test_sign_up_is_refused_without_an_invitation_by_default(client, db):
    assert django_settings.BERTH_SIGNUP == "invite"
    assert 'href="/signup/"' not in client.get(SIGNIN).text
    page = client.get(SIGNUP)
    assert page.status_code == 403
    assert "Accounts are made by invitation" in page.text
    response = client.post(SIGNUP, {"email": "new@example.test", "password": NEW_PASSWORD})
    assert response.status_code == 403
    assert not User.objects.filter(email="new@example.test").exists()
    assert not signed_in(client)


def test_sign_up_with_an_unknown_invitation_is_a_404(client, db):
    response = client.get(SIGNUP, {"invitation": "berth_000000000000_" + "a" * 43})
    assert response.status_code == 404
    assert "This invitation link does not work" in response.text


# --- change password ---------------------------------------------------------------------------


def test_changing_the_password_keeps_this_session_and_ends_the_others(dashboard_client, person):
    client, elsewhere = dashboard_client(person), dashboard_client(person)
    page = client.get("/account/password/")
    assert page.status_code == 200
    response = client.post(
        "/account/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    after = client.get("/account/password/")
    assert after.status_code == 200
    assert "Your password is changed." in after.text
    assert elsewhere.get("/account/password/").status_code == 302  # to sign in
    event = AuditEvent.objects.get(action="user.password_change")
    assert event.actor == person and event.changes == {}


def test_a_wrong_current_password_changes_nothing(dashboard_client, person):
    client = dashboard_client(person)
    response = client.post(
        "/account/password/", {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert "Your old password was entered incorrectly." in response.text
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_a_weak_new_password_is_refused(dashboard_client, person):
    response = dashboard_client(person).post(
        "/account/password/", {"old_password": PASSWORD, "new_password1": "password", "new_password2": "password"}
    )
    assert response.status_code == 400
    assert "This password is too common." in response.text


def test_changing_the_password_needs_a_signed_in_person(client, db):
    response = client.get("/account/password/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/account/password/"


# --- reset password ----------------------------------------------------------------------------


def reset_link(message) -> str:
    return re.search(r"https?://\S+/password-reset/\S+/\S+/", message.body).group(0)


def test_a_password_is_reset_through_the_emailed_link(client, person):
    response = client.post("/password-reset/", {"email": "PAT@example.test"})
    assert response.status_code == 302
    assert response["Location"] == "/password-reset/sent/"
    assert "Check your email" in client.get(response["Location"]).text
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["pat@example.test"]
    assert message.subject == "Reset your Berth password"
    link = reset_link(message)
    assert link.startswith(django_settings.BERTH_PUBLIC_URL + "/password-reset/")

    # Django moves the token out of the address before showing the form.
    landing = client.get(urlsplit(link).path)
    assert landing.status_code == 302
    form_page = client.get(landing["Location"])
    assert form_page.status_code == 200
    assert "Choose a new password" in form_page.text
    mismatch = client.post(landing["Location"], {"new_password1": NEW_PASSWORD, "new_password2": "other"})
    assert mismatch.status_code == 400
    assert "The two password fields didn" in mismatch.text
    done = client.post(landing["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert done["Location"] == "/password-reset/done/"
    assert "Your password is changed" in client.get(done["Location"]).text

    assert client.post(SIGNIN, {"email": person.email, "password": NEW_PASSWORD}).status_code == 302
    assert AuditEvent.objects.filter(action="user.password_reset", actor=person).count() == 1

    # The link works once.
    again = Client().get(urlsplit(link).path, follow=True)
    assert again.status_code == 400
    assert "This link does not work" in again.text


def test_a_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(client, person):
    known = client.post("/password-reset/", {"email": person.email})
    unknown = Client().post("/password-reset/", {"email": "nobody@example.test"})
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    assert [message.to for message in mail.outbox] == [[person.email]]


def test_a_forged_reset_link_sets_nothing(client, person):
    response = client.get("/password-reset/MQ/abc-0123456789abcdef/", follow=True)
    assert response.status_code == 400
    assert "This link does not work" in response.text
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_reset_requests_are_rate_limited(client, person, three_a_day):
    for _ in range(3):
        assert client.post("/password-reset/", {"email": person.email}).status_code == 302
    response = client.post("/password-reset/", {"email": person.email})
    assert response.status_code == 429
    assert "Too many attempts" in response.text
    assert len(mail.outbox) == 3


def test_the_sign_in_page_reads_nothing_from_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert client.get(SIGNIN).status_code == 200


def test_a_signed_in_person_opening_sign_up_goes_home(dashboard_client, person):
    response = dashboard_client(person).get(SIGNUP)
    assert response.status_code == 302
    assert response["Location"] == "/"
