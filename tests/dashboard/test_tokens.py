"""Personal API tokens in the dashboard: made (shown once), listed, revoked; only a person's own."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.test import APIClient

from berth.audit.models import AuditEvent
from berth.tenancy.models import ApiToken
from berth.tenancy.services import api_token_create
from tests.dashboard.accessibility import assert_accessible
from tests.factories import UserFactory

TOKENS = "/account/tokens/"
PLAINTEXT = re.compile(r'value="(berth_[0-9a-f]{12}_[A-Za-z0-9_-]{43})"')


@pytest.fixture
def person(db):
    return UserFactory(email="pat@example.test")


def api_as(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_a_new_token_is_shown_once_and_works_in_the_api(dashboard_client, person):
    client = dashboard_client(person)
    response = client.post(TOKENS, {"name": "CI deploys", "expires": ""})
    assert response.status_code == 302
    assert response["Location"] == TOKENS
    page = client.get(TOKENS)
    assert "no-store" in page["Cache-Control"]
    assert "Your new token" in page.text
    plaintext = PLAINTEXT.search(page.text).group(1)
    api_token = ApiToken.objects.get(user=person)
    assert api_token.name == "CI deploys" and api_token.expires_at is None
    assert plaintext.startswith(api_token.prefix)
    assert plaintext not in api_token.digest  # only its digest is kept
    assert "CI deploys" in page.text and api_token.prefix in page.text

    again = client.get(TOKENS)
    assert plaintext not in again.text
    assert "Your new token" not in again.text
    assert api_token.prefix in again.text  # still listed, by its key id

    me = api_as(plaintext).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["email"] == "pat@example.test"
    event = AuditEvent.objects.get(action="api_token.create")
    assert event.source == AuditEvent.Source.DASHBOARD and event.actor == person


def test_an_expiry_date_makes_the_token_expire_after_that_day(dashboard_client, person):
    day = timezone.now().date() + timedelta(days=30)
    client = dashboard_client(person)
    assert client.post(TOKENS, {"name": "monthly", "expires": day.isoformat()}).status_code == 302
    api_token = ApiToken.objects.get(user=person)
    assert api_token.expires_at.date() == day + timedelta(days=1)
    assert (api_token.expires_at.hour, api_token.expires_at.minute) == (0, 0)
    shown = re.search(
        re.escape(f'<time datetime="{api_token.expires_at.isoformat()}"') + r"[^>]*>([^<]*)</time>",
        client.get(TOKENS).text,
    )
    assert shown.group(1).startswith("4\xa0weeks") and shown.group(1).endswith("from now")


def test_a_past_expiry_is_refused_next_to_its_field_and_the_name_is_kept(dashboard_client, person):
    yesterday = timezone.now().date() - timedelta(days=1)
    response = dashboard_client(person).post(TOKENS, {"name": "late", "expires": yesterday.isoformat()})
    assert response.status_code == 400
    assert re.search(r'id="id_expires_error">The expiry must be in the future.', response.text)
    assert 'value="late"' in response.text
    assert not ApiToken.objects.filter(user=person).exists()


def test_the_name_follows_the_api_rules(dashboard_client, person):
    client = dashboard_client(person)
    long = client.post(TOKENS, {"name": "x" * 101})
    assert long.status_code == 400
    assert re.search(r'id="id_name_error">Ensure this field has no more than 100 characters.', long.text)
    empty = client.post(TOKENS, {"name": ""})
    assert empty.status_code == 400
    assert 'id="id_name_error"' in empty.text
    assert not ApiToken.objects.filter(user=person).exists()


def test_revoking_asks_to_confirm_then_the_token_stops_working(dashboard_client, person):
    api_token, plaintext = api_token_create(actor=person, name="old laptop")
    client = dashboard_client(person)
    listing = client.get(TOKENS)
    assert f'href="/account/tokens/{api_token.pk}/revoke/"' in listing.text
    confirm = client.get(f"/account/tokens/{api_token.pk}/revoke/")
    assert confirm.status_code == 200
    assert "Revoke the token “old laptop”" in confirm.text
    api_token.refresh_from_db()
    assert api_token.revoked_at is None  # a GET changes nothing
    response = client.post(f"/account/tokens/{api_token.pk}/revoke/")
    assert response.status_code == 302
    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    after = client.get(TOKENS)
    assert "is revoked" in after.text
    assert "revoked</span>" in after.text
    assert f'href="/account/tokens/{api_token.pk}/revoke/"' not in after.text
    assert api_as(plaintext).get("/api/v1/me/").status_code == 401


def test_another_persons_token_is_a_404_and_stays(dashboard_client, person):
    theirs, plaintext = api_token_create(actor=UserFactory(), name="theirs")
    client = dashboard_client(person)
    assert "theirs" not in client.get(TOKENS).text
    assert client.get(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    forged = client.post(f"/account/tokens/{theirs.pk}/revoke/")
    assert forged.status_code == 404
    assert "Not found" in forged.text
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert api_as(plaintext).get("/api/v1/me/").status_code == 200


def test_tokens_need_a_signed_in_person(client, db):
    response = client.get(TOKENS)
    assert response.status_code == 302
    assert response["Location"] == f"/signin/?next={TOKENS}"
    assert client.post(TOKENS, {"name": "x"}).status_code == 302
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("count", [1, 20])
def test_the_tokens_page_reads_the_same_queries_whatever_the_number_of_tokens(
    dashboard_client, person, django_assert_num_queries, count
):
    for number in range(count):
        api_token, _ = api_token_create(actor=person, name=f"token {number}")
    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now(), expires_at=timezone.now())
    client = dashboard_client(person)
    # The session, the user, the count and the page of tokens, the organization switcher.
    with django_assert_num_queries(5):
        page = client.get(TOKENS)
    assert page.text.count("<tr>") == count + 1


@pytest.mark.django_db(transaction=True)
def test_tokens_in_the_browser_made_shown_once_and_revoked(page_as, person):
    page = page_as(person)
    page.goto(TOKENS)
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_text("You have no tokens yet.")).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Name").fill("CI deploys")
    page.get_by_label("Expires after").fill((timezone.now().date() - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#id_expires_error")).to_have_text("The expiry must be in the future.")
    expect(page.get_by_label("Name")).to_have_value("CI deploys")
    assert_accessible(page)

    page.get_by_label("Expires after").fill("")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_label("Token", exact=True)
    expect(shown).to_have_value(re.compile(r"^berth_[0-9a-f]{12}_"))
    plaintext = shown.input_value()
    assert_accessible(page)
    assert api_as(plaintext).get("/api/v1/me/").status_code == 200

    page.reload()
    expect(page.get_by_role("cell", name="CI deploys", exact=True)).to_be_visible()
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)
    assert plaintext not in page.content()

    page.get_by_role("link", name="Revoke CI deploys").click()
    expect(page.get_by_role("heading", name="Revoke the token “CI deploys”")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Revoke token").click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    expect(page.get_by_role("row", name=re.compile("CI deploys"))).to_contain_text("revoked")
    assert api_as(plaintext).get("/api/v1/me/").status_code == 401
