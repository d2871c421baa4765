"""Creating an app and deleting one (typing its name to confirm), for the roles that may, and nobody else."""

import re
from html import unescape

import pytest
from playwright.sync_api import Page, expect

from berth.applications.models import App
from berth.audit.models import AuditEvent
from berth.billing.models import Quota
from berth.tenancy.roles import Role
from tests.dashboard.accessibility import assert_accessible
from tests.factories import AppFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

NEW = "/orgs/acme/apps/new/"
DELETE = "/orgs/acme/apps/shop/delete/"


def field_html(html: str, name: str) -> str:
    """The markup of one form field: its label, input, help and errors."""
    start = html.index(f'<label for="id_{name}"')
    return html[start : html.index("</div>", start)]


def messages_text(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# Creating.


def test_a_developer_creates_an_app_and_finds_it_in_the_list(organization, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    form = client.get(NEW)
    assert form.status_code == 200 and 'name="name"' in form.content.decode()

    response = client.post(NEW, {"name": "shop", "description": "The shop"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/", 302)]
    assert messages_text(response) == ["Created the app shop."]
    assert 'href="/orgs/acme/apps/shop/"' in response.content.decode()
    app = App.objects.get(organization=organization, name="shop")
    assert (app.description, app.created_by) == ("The shop", members[Role.DEVELOPER])
    event = AuditEvent.objects.get(action="app.create")
    assert (event.source, event.actor) == ("dashboard", members[Role.DEVELOPER])


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("shop", "An app with this name already exists in the organization."),
        ("My Shop", "Use lowercase letters, digits and single hyphens"),
        ("a" * 31, "Ensure this field has no more than 30 characters."),
        ("", "This field is required."),
    ],
)
def test_a_refused_app_keeps_what_was_typed_with_the_error_at_the_name(
    name, error, organization, members, dashboard_client
):
    AppFactory(organization=organization, name="shop")
    response = dashboard_client(members[Role.ADMIN]).post(NEW, {"name": name, "description": "Kept <as typed>"})
    html = response.content.decode()
    assert response.status_code == 400
    field = field_html(html, "name")
    assert error in field
    assert f'value="{name}"' in field if name else "value=" not in field
    assert "Kept &lt;as typed&gt;" in field_html(html, "description")
    assert App.objects.filter(organization=organization).count() == 1
    assert not AuditEvent.objects.filter(action="app.create").exists()


def test_the_app_quota_is_shown_at_the_name(organization, members, dashboard_client):
    Quota.objects.create(organization=organization, max_apps=1)
    AppFactory(organization=organization, name="shop")
    response = dashboard_client(members[Role.OWNER]).post(NEW, {"name": "blog"})
    assert response.status_code == 400
    assert "The organization has 1 apps; its limit is 1." in field_html(response.content.decode(), "name")
    assert not App.objects.filter(name="blog").exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_role_without_app_create_gets_403_and_creates_nothing(role, organization, members, dashboard_client):
    client = dashboard_client(members[role])
    assert client.get(NEW).status_code == 403
    response = client.post(NEW, {"name": "forged"})
    assert response.status_code == 403 and "developer" in response.content.decode()
    assert not App.objects.filter(name="forged").exists()


def test_an_outsider_cannot_create_an_app_in_another_organization(organization, outsider, dashboard_client):
    assert dashboard_client(outsider).post(NEW, {"name": "forged"}).status_code == 404
    assert not App.objects.filter(name="forged").exists()


# Deleting.


@pytest.fixture
def shop(organization):
    return AppFactory(organization=organization, name="shop")


def test_deleting_asks_for_the_name_and_a_wrong_one_deletes_nothing(shop, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    confirm = client.get(DELETE)
    assert confirm.status_code == 200
    assert "Type the app's name, shop, to delete it" in unescape(confirm.content.decode())

    response = client.post(DELETE, {"confirm": "shop2"})
    assert response.status_code == 400
    field = unescape(field_html(response.content.decode(), "confirm"))
    assert "This is not the app's name (shop); nothing was deleted." in field and 'value="shop2"' in field
    assert App.objects.filter(pk=shop.pk).exists()
    assert not AuditEvent.objects.filter(action="app.delete").exists()


def test_deleting_with_the_right_name_deletes_the_app(shop, members, dashboard_client):
    response = dashboard_client(members[Role.ADMIN]).post(DELETE, {"confirm": "shop"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/", 302)]
    assert messages_text(response) == ["Deleted the app shop; its containers are being removed."]
    assert not App.objects.filter(pk=shop.pk).exists()
    assert 'href="/orgs/acme/apps/shop/"' not in response.content.decode()
    assert AuditEvent.objects.get(action="app.delete").source == "dashboard"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_role_without_app_delete_gets_403_and_the_app_stays(role, shop, members, dashboard_client):
    client = dashboard_client(members[role])
    assert client.get(DELETE).status_code == 403
    response = client.post(DELETE, {"confirm": "shop"})
    assert response.status_code == 403
    assert App.objects.filter(pk=shop.pk).exists()


def test_another_organizations_app_is_a_404(shop, members, outsider, dashboard_client):
    # An outsider asking for acme's app, and an acme member naming it under their own org's URL.
    assert dashboard_client(outsider).post(DELETE, {"confirm": "shop"}).status_code == 404
    assert dashboard_client(outsider).post("/orgs/globex/apps/shop/delete/", {"confirm": "shop"}).status_code == 404
    theirs = AppFactory(organization=OrganizationFactory(slug="initech"), name="theirs")
    client = dashboard_client(members[Role.OWNER])
    assert client.post("/orgs/initech/apps/theirs/delete/", {"confirm": "theirs"}).status_code == 404
    assert client.post("/orgs/acme/apps/theirs/delete/", {"confirm": "theirs"}).status_code == 404
    assert client.get("/orgs/acme/apps/nope/delete/").status_code == 404
    assert App.objects.filter(pk__in=[shop.pk, theirs.pk]).count() == 2


def test_the_forms_read_a_fixed_number_of_queries(shop, members, dashboard_client, django_assert_num_queries):
    client = dashboard_client(members[Role.OWNER])
    client.get(NEW)
    with django_assert_num_queries(4):  # session, user, membership, the switcher's organizations
        assert client.get(NEW).status_code == 200
    with django_assert_num_queries(5):  # and the app
        assert client.get(DELETE).status_code == 200


# In a real Chromium.


def test_create_an_app_with_the_keyboard_then_search_finds_it_live(page_as, organization, members):
    for name in ("blog", "docs"):
        AppFactory(organization=organization, name=name)
    page: Page = page_as(members[Role.DEVELOPER])
    page.goto("/orgs/acme/")
    assert_accessible(page)

    new_app = page.get_by_role("link", name="New app")
    new_app.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New app")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Name").focus()
    page.keyboard.type("shop")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Description")).to_be_focused()
    page.keyboard.type("The shop")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create app")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("status").first).to_have_text("Created the app shop.")
    apps = page.locator("#apps tbody")
    expect(apps.get_by_role("link", name="shop", exact=True)).to_be_visible()
    expect(apps.locator("tr")).to_have_count(3)
    assert_accessible(page)

    # Typing in the search box replaces the list without loading the page again.
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("Search apps by name").focus()
    page.keyboard.type("sh")
    expect(apps.locator("tr")).to_have_count(1)
    expect(page.locator("#apps tbody")).to_contain_text("shop")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page).to_have_url(re.compile(r"/orgs/acme/\?q=sh$"))
    expect(page.get_by_label("Search apps by name")).to_be_focused()
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    expect(page.locator("#apps tbody tr")).to_have_count(3)
    assert page.evaluate("window.stillTheSamePage") is True


def test_delete_an_app_by_typing_its_name_in_the_browser(page_as, shop, members):
    page: Page = page_as(members[Role.OWNER])
    page.goto("/orgs/acme/")
    page.get_by_role("link", name="Delete shop").click()
    expect(page.get_by_role("heading", name="Delete shop")).to_be_visible()
    assert_accessible(page)
    confirm = page.get_by_label("Type the app's name, shop, to delete it")
    confirm.fill("shp")
    confirm.press("Enter")
    expect(page.get_by_text("This is not the app's name (shop); nothing was deleted.")).to_be_visible()
    expect(confirm).to_have_value("shp")
    assert_accessible(page)
    confirm.fill("shop")
    page.get_by_role("button", name="Delete shop").click()
    expect(page.get_by_role("status").first).to_have_text("Deleted the app shop; its containers are being removed.")
    expect(page.locator("#apps")).to_contain_text("This organization has no apps yet.")
    assert not App.objects.filter(pk=shop.pk).exists()
