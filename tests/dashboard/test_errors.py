"""The dashboard's error pages: a 500, a 404 and a 403 in the dashboard's look, never a traceback, while
the API under /api/ keeps answering its JSON error shape for the same failures."""

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from berth.dashboard.views import orgs
from berth.tenancy import selectors
from berth.tenancy.roles import Role, role_allows, roles_allowing
from tests.conftest import token_client

from .accessibility import assert_accessible
from .routes import ORG_ROUTES, url_of

pytestmark = pytest.mark.django_db

# What a failing selector says: internal detail that must never reach a page.
DETAIL = "selector failed: relation app_secret_table is gone"


def failing(*args, **kwargs):
    raise RuntimeError(DETAIL)


@pytest.fixture
def production(settings):
    """DEBUG off, as Berth runs for its users: Django's technical pages are never shown."""
    settings.DEBUG = False


def signed_in(user) -> Client:
    """A test client that answers an exception in a view with the error page, as a server does."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def html_of(response) -> str:
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


# --- 500 -------------------------------------------------------------------------------------------------


def test_an_exception_in_a_dashboard_page_is_the_500_page_without_a_traceback(
    production, monkeypatch, organization, members
):
    monkeypatch.setattr(orgs, "app_statuses", failing)  # the org home reads its apps' statuses through it
    client = signed_in(members[Role.OWNER])
    for headers in ({}, {"HX-Request": "true", "HX-Boosted": "true"}, {"HX-Request": "true"}):
        response = client.get("/orgs/acme/", headers=headers)
        assert response.status_code == 500
        html = html_of(response)
        assert "<h1>Something went wrong</h1>" in html
        assert "Nothing you typed was changed." in html
        assert 'href="/static/berth/berth.css"' in html  # the dashboard's look
        assert DETAIL not in html and "Traceback" not in html and "RuntimeError" not in html


def test_an_exception_in_the_api_is_its_json_error_not_the_page(production, monkeypatch, organization, members):
    monkeypatch.setattr(selectors, "organizations_of", failing)  # the API's organization list reads it
    api = token_client(members[Role.OWNER])
    api.raise_request_exception = False
    response = api.get("/api/v1/orgs/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "server_error", "message": "Berth failed to answer.", "fields": {}}
    assert DETAIL not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_500_page_shows_after_a_boosted_navigation_and_is_accessible(production, monkeypatch, members, page_as):
    page = page_as(members[Role.OWNER])
    page.goto("/orgs/acme/members/")
    monkeypatch.setattr(orgs, "app_statuses", failing)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Apps").click()
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("selector failed")
    assert_accessible(page)
    assert page.goto("/orgs/acme/").status == 500
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    assert_accessible(page)


# --- 404 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["/no-such-page/", "/orgs/no-such-org/", "/orgs/globex/", "/orgs/acme/apps/nope/", "/orgs/acme/apps/x/releases/"],
)
def test_what_is_not_there_or_not_yours_is_the_404_page(address, production, organization, outsider, members):
    response = signed_in(members[Role.OWNER]).get(address)
    assert response.status_code == 404
    html = html_of(response)
    assert "<h1>Not found</h1>" in html and "There is nothing here, or nothing you may see." in html
    assert '<nav class="org-nav" aria-label="Organization">' in html  # the dashboard around it
    assert "globex" not in html.lower()  # nothing said about what exists elsewhere


def test_an_unknown_api_address_is_json_not_the_page(production, members):
    response = token_client(members[Role.OWNER]).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not found.", "fields": {}}


# --- 403 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING, Role.DEVELOPER])
def test_every_page_a_role_may_not_open_is_the_403_page_naming_the_roles_that_may(role, production, world, members):
    """Derived from the URL map: each refused route says, in words, which roles have its action."""
    client = signed_in(members[role])
    refused = 0
    for route, entry in ORG_ROUTES:
        action = entry.callback.required_action
        if role_allows(role, action):
            continue
        response = client.get(url_of(entry, world))
        assert response.status_code == 403, route
        html = html_of(response)
        assert "<h1>Not allowed</h1>" in html, route
        sentence = re.search(r"This needs the role ([a-z, ]+); your role here is (\w+)\.", html)
        assert sentence, route
        named = set(re.split(r", | or ", sentence.group(1)))
        assert named == set(roles_allowing(action)) and sentence.group(2) == role, route
        refused += 1
    assert refused >= 3
