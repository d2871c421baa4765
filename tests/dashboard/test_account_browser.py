"""Signing in, up and through an invitation, and resetting a password, in a real Chromium; every page
is checked with axe-core."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from berth.tenancy.models import Membership, User
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from tests.dashboard.accessibility import assert_accessible
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a quite different passphrase"


def test_a_visitor_at_the_root_signs_in_with_the_keyboard_only(page: Page, members):
    developer = members[Role.DEVELOPER]
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin/$"))
    expect(page.get_by_role("heading", name="Sign in to Berth")).to_be_visible()
    assert_accessible(page)

    email = page.get_by_label("Email")
    expect(email).to_be_focused()
    page.keyboard.type(developer.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("The email or the password is not right.")
    expect(email).to_have_value(developer.email)
    assert_accessible(page)

    # The refused page comes back with the email typed and focused: Tab on to the password.
    expect(email).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.get_by_role("heading", name="Acme")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(developer.email)


def test_signing_out_from_the_header(page_as, members):
    page = page_as(members[Role.VIEWER])
    page.goto("/orgs/acme/")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin/$"))
    expect(page.locator(".messages")).to_contain_text("You are signed out.")
    page.goto("/account/tokens/")
    expect(page).to_have_url(re.compile(r"/signin/\?next=/account/tokens/$"))


def test_a_new_person_signs_up_when_sign_up_is_open(page: Page, settings):
    settings.BERTH_SIGNUP = "open"
    page.goto("/signin/")
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your Berth account")).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Email").fill("ada@example.test")
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Password").fill("12345")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#id_password_error")).to_contain_text("This password is too short.")
    expect(page.get_by_label("Email")).to_have_value("ada@example.test")
    expect(page.get_by_label("Name")).to_have_value("Ada")
    assert_accessible(page)

    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/orgs/new/$"))  # creating a first organization
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert User.objects.get(email="ada@example.test").check_password(NEW_PASSWORD)


def test_an_invited_visitor_signs_up_from_the_link_and_lands_in_the_organization(
    page: Page, organization, members, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(
            actor=members[Role.OWNER], organization=organization, email="grace@example.test", role=Role.VIEWER
        )
    link = re.search(r"https?://\S+/invitations/\S+/", mail.outbox[-1].body).group(0)

    page.goto(urlsplit(link).path)
    expect(page.get_by_role("heading", name="Join Acme")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in to accept")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_label("Email")).to_have_value("grace@example.test")
    expect(page.get_by_label("Email")).to_be_disabled()
    assert_accessible(page)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.locator(".messages")).to_contain_text("You joined Acme.")
    assert Membership.objects.get(user__email="grace@example.test").role == Role.VIEWER


def test_a_password_is_reset_from_the_sign_in_page(page: Page, members):
    person = members[Role.BILLING]
    page.goto("/signin/")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Email").fill(person.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert_accessible(page)

    link = re.search(r"https?://\S+/password-reset/\S+/\S+/", mail.outbox[-1].body).group(0)
    page.goto(urlsplit(link).path)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("heading", name="Your password is changed")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))


def test_changing_the_password_from_the_header(page_as, members):
    person = members[Role.ADMIN]
    page = page_as(person)
    page.goto("/orgs/acme/")
    page.get_by_role("navigation", name="Account").get_by_role("link", name=person.email).click()
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Old password").fill("wrong")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()  # a boosted form: its 400 is swapped in
    expect(page.locator("#id_old_password_error")).to_contain_text("Your old password was entered incorrectly.")
    assert_accessible(page)
    page.get_by_label("Old password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".messages")).to_contain_text("Your password is changed.")
    page.goto("/account/tokens/")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()  # still signed in
