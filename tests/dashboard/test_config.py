"""Config vars in the dashboard: values hidden until revealed (each reveal audited, by key), and a change
of several vars previewed as a diff, then made as one release by the API's service (issue 11, item 7)."""

import html
import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from berth.applications.models import App, ConfigVar, Release
from berth.audit.models import AuditEvent
from berth.deployments.models import Deployment
from berth.deployments.services import config_set, release_create
from berth.tenancy.roles import Role
from tests.dashboard.accessibility import assert_accessible
from tests.factories import AppFactory, SizeFactory

VALUES = {"API_TOKEN": "tok-secret-1", "DATABASE_URL": "postgres://u:pw-secret-2@db/x", "GREETING": "hi-secret-3"}


@pytest.fixture
def app(organization, members):
    """An app with a release and three config vars (release v2)."""
    SizeFactory(is_default=True)
    app = AppFactory(organization=organization, name="shop")
    release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1", process_types={"web": {}})
    config_set(actor=members[Role.OWNER], app=app, values=dict(VALUES))
    AuditEvent.objects.all().delete()
    return app


def url(name: str, app: App) -> str:
    return reverse(f"dashboard:{name}", args=[app.organization.slug, app.name])


def config_of(app: App) -> dict[str, str]:
    return dict(app.config_vars.values_list("key", "value"))


def state(app: App) -> tuple:
    """What a refused or forged request must leave alone."""
    return (
        config_of(app),
        Release.objects.filter(app=app).count(),
        Deployment.objects.filter(app=app).count(),
        AuditEvent.objects.count(),
    )


def cell_with(page: str, element_id: str) -> str:
    """The text of the table cell that holds the element `element_id`, tags stripped."""
    match = re.search(rf'<td[^>]*>((?:(?!</td>).)*id="{element_id}"(?:(?!</td>).)*)</td>', page, re.DOTALL)
    assert match, f"no cell holds #{element_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def checked(page: str, name: str) -> bool:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert tag, f"no input {name}"
    return " checked" in tag.group(0)


def edit(**fields) -> dict:
    """A POST of the edit form for the app's three vars and three new rows, with `fields` filled in."""
    return {"rows": "3", "known": ",".join(sorted(VALUES)), **fields}


@pytest.mark.django_db
def test_values_are_hidden_until_revealed(app, members, dashboard_client):
    response = dashboard_client(members[Role.DEVELOPER]).get(url("config", app))
    page = response.content.decode()
    assert response.status_code == 200
    assert all(f"<code>{key}</code>" in page for key in VALUES)
    assert not any(value in page or html.escape(value) in page for value in VALUES.values())
    assert page.count(">Reveal<") == 3 and "Reveal all values" in page
    assert "no-store" in response["Cache-Control"]
    assert not AuditEvent.objects.exists(), "looking at keys is not a reveal"


@pytest.mark.django_db
def test_revealing_all_shows_the_values_and_records_one_event_without_them(app, members, dashboard_client):
    developer = members[Role.DEVELOPER]
    response = dashboard_client(developer).post(url("config-reveal", app))
    page = response.content.decode()
    assert response.status_code == 200
    assert all(html.escape(value) in page for value in VALUES.values())
    assert "Hide values" in page
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.source) == ("config.reveal", developer, "dashboard")
    assert event.changes == {"keys": sorted(VALUES)}
    recorded = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert not any(value in recorded for value in VALUES.values())


@pytest.mark.django_db
def test_revealing_one_key_shows_only_its_value(app, members, dashboard_client):
    page = dashboard_client(members[Role.ADMIN]).post(url("config-reveal", app), {"key": "GREETING"}).content.decode()
    assert VALUES["GREETING"] in page
    assert VALUES["API_TOKEN"] not in page and html.escape(VALUES["DATABASE_URL"]) not in page
    assert AuditEvent.objects.get().changes == {"keys": ["GREETING"]}


@pytest.mark.django_db
def test_a_get_of_the_reveal_url_reveals_nothing(app, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(url("config-reveal", app))
    assert response.status_code == 302 and response["Location"] == url("config", app)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_change_is_previewed_as_a_diff_and_saves_nothing(app, members, dashboard_client):
    before = state(app)
    change = edit(set_GREETING="hello again", remove_API_TOKEN="on", new_key_0="NEW_FLAG", new_value_0="on-typed")
    response = dashboard_client(members[Role.DEVELOPER]).post(url("config", app), change)
    page = response.content.decode()
    assert response.status_code == 200
    rows = {
        (kind, key): " ".join(re.sub(r"<[^>]+>", " ", rest).split())
        for kind, key, rest in re.findall(
            r'<tr class="diff-(\w+)">.*?<code>(\w+)</code></th>(.*?)</tr>', page, re.DOTALL
        )
    }
    assert rows == {
        ("added", "NEW_FLAG"): "on-typed",
        ("changed", "GREETING"): "hello again",
        ("removed", "API_TOKEN"): "—",
    }
    assert "Saving makes one new release from v2" in page
    assert VALUES["DATABASE_URL"] not in page and VALUES["API_TOKEN"] not in page, "only typed values are shown"
    assert state(app) == before


@pytest.mark.django_db
def test_confirming_makes_exactly_one_release_with_the_whole_change(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    change = edit(
        set_GREETING="hello again",
        remove_API_TOKEN="True",
        new_key_0="NEW_FLAG",
        new_value_0="on",
        new_key_1="LOG_LEVEL",
        new_value_1="debug",
    )
    response = client.post(url("config", app), {**change, "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == url("config", app)
    expected = {
        "DATABASE_URL": VALUES["DATABASE_URL"],
        "GREETING": "hello again",
        "NEW_FLAG": "on",
        "LOG_LEVEL": "debug",
    }
    assert config_of(app) == expected
    release = Release.objects.get(app=app, version=3)
    assert release.config == expected and release.author == members[Role.DEVELOPER]
    assert Release.objects.filter(app=app).count() == 3, "one release for the whole change"
    assert Deployment.objects.get(release=release).state == Deployment.State.QUEUED
    event = AuditEvent.objects.get(action="config.update")
    assert event.changes == {"set": ["GREETING", "LOG_LEVEL", "NEW_FLAG"], "unset": ["API_TOKEN"]}
    notice = client.get(url("config", app)).content.decode()
    assert "release v3 is being deployed" in notice


@pytest.mark.django_db
def test_a_change_before_any_release_keeps_the_config_for_the_first(organization, members, dashboard_client):
    app = AppFactory(organization=organization, name="fresh")
    client = dashboard_client(members[Role.OWNER])
    change = {"rows": "3", "known": "", "new_key_0": "GREETING", "new_value_0": "hello", "confirm": "yes"}
    assert client.post(url("config", app), change).status_code == 302
    assert config_of(app) == {"GREETING": "hello"} and not Release.objects.filter(app=app).exists()
    assert "the first release will use it" in client.get(url("config", app)).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "cell", "error"),
    [
        ({"new_key_1": "lower_case", "new_value_1": "typed-1"}, "id_new_key_1", "uppercase letters"),
        ({"new_key_2": "BERTH_APP", "new_value_2": "typed-2"}, "id_new_key_2", "is set by Berth"),
        ({"new_key_0": "PORT", "new_value_0": "typed-3"}, "id_new_key_0", "is set by Berth"),
        ({"new_key_0": "NUL", "new_value_0": "a\x00b"}, "id_new_value_0", "Null characters are not allowed"),
        ({"set_GREETING": "x", "remove_GREETING": "on"}, "id_set_GREETING", "not both"),
        ({"new_key_0": "GREETING", "new_value_0": "x", "remove_GREETING": "on"}, "id_new_key_0", "changed twice"),
        ({"new_value_1": "orphan-typed"}, "id_new_key_1", "Give this value a key"),
    ],
)
def test_a_refused_row_shows_its_error_and_keeps_what_was_typed(app, members, dashboard_client, fields, cell, error):
    before = state(app)
    fields = {"new_key_2": "GOOD_KEY", "new_value_2": "good-typed", **fields}
    for confirm in ("", "yes"):
        response = dashboard_client(members[Role.OWNER]).post(
            url("config", app), {**edit(**fields), "confirm": confirm}
        )
        page = response.content.decode()
        assert response.status_code == 400
        assert error in cell_with(page, cell)
        assert f'aria-describedby="{cell}_error"' in page and f'id="{cell}_error"' in page, "tied to its input"
        typed = [v for k, v in fields.items() if not k.startswith("remove") and "\x00" not in v]
        assert all(f'value="{v}"' in page for v in typed), "what was typed is kept"
        assert VALUES["GREETING"] not in page
    assert state(app) == before


@pytest.mark.django_db
def test_an_empty_change_and_a_stale_form_are_refused(app, members, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    before = state(app)
    empty = client.post(url("config", app), edit())
    assert empty.status_code == 400 and "Nothing to change" in empty.content.decode()
    stale = client.post(url("config", app), {**edit(set_GREETING="x", confirm="yes"), "known": "GREETING"})
    assert stale.status_code == 400 and "changed since this page was made" in stale.content.decode()
    assert state(app) == before


@pytest.mark.django_db
def test_more_rows_and_back_to_editing_keep_what_was_typed(app, members, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    more = client.post(url("config", app), edit(new_key_0="FIRST", new_value_0="one", remove_GREETING="on", more="yes"))
    page = more.content.decode()
    assert more.status_code == 200 and 'id="id_new_key_5"' in page and 'id="id_new_key_6"' not in page
    assert 'value="FIRST"' in page and 'value="one"' in page
    assert checked(page, "remove_GREETING") and not checked(page, "remove_API_TOKEN")
    back = client.post(url("config", app), edit(remove_GREETING="True", remove_API_TOKEN="False", edit="yes"))
    page = back.content.decode()
    assert checked(page, "remove_GREETING") and not checked(page, "remove_API_TOKEN")
    assert not AuditEvent.objects.exists() and Release.objects.filter(app=app).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_roles_without_config_view_get_403_and_forged_posts_change_nothing(app, members, dashboard_client, role):
    client = dashboard_client(members[role])
    before = state(app)
    page = client.get(url("config", app))
    assert page.status_code == 403 and "owner, admin or developer" in page.content.decode()
    assert client.post(url("config-reveal", app)).status_code == 403
    forged = client.post(url("config", app), edit(set_GREETING="pwned", confirm="yes"))
    assert forged.status_code == 403
    assert state(app) == before
    releases = client.get(reverse("dashboard:releases", args=["acme", "shop"])).content.decode()
    assert 'href="/orgs/acme/apps/shop/config/"' not in releases, "no link to a page they may not open"


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.DEVELOPER])
def test_roles_with_deploy_get_the_edit_form(app, members, dashboard_client, role):
    page = dashboard_client(members[role]).get(url("config", app)).content.decode()
    assert 'name="set_GREETING"' in page and 'name="remove_GREETING"' in page and "Review the change" in page


@pytest.mark.django_db
def test_another_organization_gets_404(app, outsider, dashboard_client):
    client = dashboard_client(outsider)
    before = state(app)
    assert client.get(url("config", app)).status_code == 404
    assert client.post(url("config-reveal", app)).status_code == 404
    assert client.post(url("config", app), edit(set_GREETING="pwned", confirm="yes")).status_code == 404
    assert state(app) == before


def add_vars(app: App, count: int) -> None:
    ConfigVar.objects.filter(app=app).delete()
    ConfigVar.objects.bulk_create(ConfigVar(app=app, key=f"KEY_{i}", value=f"value-{i}") for i in range(count))


@pytest.mark.django_db
def test_the_config_page_costs_the_same_queries_whatever_the_number_of_vars(
    app, members, dashboard_client, django_assert_num_queries
):
    client = dashboard_client(members[Role.DEVELOPER])
    client.get(url("config", app))
    for count in (3, 60):
        add_vars(app, count)
        with django_assert_num_queries(6):
            page = client.get(url("config", app)).content.decode()
        assert page.count('name="remove_KEY_') == count
        with django_assert_num_queries(10):
            page = client.post(url("config-reveal", app)).content.decode()
        assert f"value-{count - 1}" in page


@pytest.mark.django_db(transaction=True)
def test_browser_config_masked_revealed_and_edited_with_the_keyboard(app, members, page_as):
    page = page_as(members[Role.DEVELOPER])
    page.goto(url("config", app))
    expect(page.get_by_role("heading", name="Config vars", exact=True)).to_be_visible()
    expect(page.locator("#var-GREETING")).not_to_contain_text(VALUES["GREETING"])
    assert_accessible(page)

    page.get_by_role("button", name="Reveal all values").click()
    expect(page.locator("#var-GREETING")).to_contain_text(VALUES["GREETING"])
    assert_accessible(page)

    page.get_by_label("New value for GREETING", exact=True).focus()
    page.keyboard.type("typed-by-keyboard")
    page.get_by_label("Remove API_TOKEN", exact=True).focus()
    page.keyboard.press("Space")
    page.get_by_label("Key of new row 1", exact=True).focus()
    page.keyboard.type("LOG_LEVEL")
    page.keyboard.press("Tab")
    page.keyboard.type("debug")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Review the change")).to_be_visible()
    expect(page.get_by_role("row", name="Added LOG_LEVEL debug")).to_be_visible()
    expect(page.get_by_role("row", name="Changed GREETING typed-by-keyboard")).to_be_visible()
    expect(page.get_by_role("row", name="Removed API_TOKEN —")).to_be_visible()
    assert_accessible(page)
    assert Release.objects.filter(app=app).count() == 2

    page.get_by_role("button", name="Save and deploy").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("release v3 is being deployed")
    expect(page.locator("#var-LOG_LEVEL")).to_be_visible()
    assert config_of(app) == {
        "DATABASE_URL": VALUES["DATABASE_URL"],
        "GREETING": "typed-by-keyboard",
        "LOG_LEVEL": "debug",
    }
    assert Release.objects.get(app=app, version=3).config == config_of(app)


@pytest.mark.django_db(transaction=True)
def test_browser_a_refused_row_shows_its_error_and_keeps_the_input(app, members, page_as):
    page = page_as(members[Role.OWNER])
    page.goto(url("config", app))
    page.get_by_label("Key of new row 2", exact=True).fill("not-a-key")
    page.get_by_label("Value of new row 2", exact=True).fill("kept-value")
    page.get_by_label("Key of new row 2", exact=True).press("Enter")
    expect(page.get_by_text("Config keys are uppercase letters, digits and underscores.")).to_be_visible()
    expect(page.get_by_label("Key of new row 2", exact=True)).to_have_value("not-a-key")
    expect(page.get_by_label("Value of new row 2", exact=True)).to_have_value("kept-value")
    assert_accessible(page)
    assert config_of(app) == VALUES and Release.objects.filter(app=app).count() == 2
