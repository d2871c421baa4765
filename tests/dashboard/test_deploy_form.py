"""Deploying from the dashboard: the form takes what the API takes, refuses what it refuses with the same
words next to the field at fault, keeps what was typed, and only roles that may deploy get it."""

import re

import pytest
from playwright.sync_api import expect

from berth.applications.models import Formation, Release
from berth.audit.models import AuditEvent
from berth.billing.models import Quota
from berth.deployments.models import Deployment
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.dashboard.accessibility import assert_accessible
from tests.factories import AppFactory
from tests.fleet import WEB

from .app_rows import WEB_STORED, app_running_v1, form_values, sizes, stored

DEPLOY = "/orgs/acme/apps/shop/deploy/"
OVERVIEW = "/orgs/acme/apps/shop/"
API_RELEASES = "/api/v1/orgs/acme/apps/shop/releases/"
MANAGEMENT = {"process-TOTAL_FORMS": "1", "process-INITIAL_FORMS": "0"}


@pytest.fixture
def new_app(organization):
    sizes()
    return AppFactory(organization=organization, name="shop")


def row(index: int = 0, **fields) -> dict:
    return {f"process-{index}-{name}": value for name, value in fields.items()}


def web_row(index: int = 0, **overrides) -> dict:
    """The fields a person fills for tests.fleet.WEB."""
    health = WEB["web"]["health_check"]
    fields = {
        "name": "web",
        "port": "8080",
        "health_type": health["type"],
        "health_path": health["path"],
        "interval_s": str(health["interval_s"]),
        "retries": str(health["retries"]),
        "start_period_s": str(health["start_period_s"]),
    }
    return row(index, **{**fields, **overrides})


def error_of(html: str, field_id: str) -> str:
    """The error shown in the field's own block (its label, input and messages), or ""."""
    start = html.index(f'<label for="{field_id}">')
    block = html[start : html.index("</div>", start)]
    found = re.findall(rf'<p class="error" id="{field_id}_error">([^<]*)</p>', block)
    return " ".join(found)


def nothing_made() -> bool:
    return not Release.objects.exists() and not Deployment.objects.exists()


# --- what the form takes ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_first_deploy_offers_one_web_row(new_app, members, dashboard_client):
    html = dashboard_client(members[Role.DEVELOPER]).get(DEPLOY).content.decode()
    values = form_values(html, DEPLOY)
    assert values["image"] == ""
    assert (values["process-0-name"], values["process-0-port"]) == ("web", "8080")
    assert values["process-TOTAL_FORMS"] == "1"


@pytest.mark.django_db
def test_a_deploy_makes_the_release_the_api_would_and_follows_it_on_the_overview(new_app, members, dashboard_client):
    developer = members[Role.DEVELOPER]
    posted = {"image": "berth-test/web:v1", "description": "First light", **MANAGEMENT, **web_row()}
    response = dashboard_client(developer).post(DEPLOY, posted, follow=True)
    assert response.redirect_chain == [(OVERVIEW, 302)]
    assert "Release v1 (berth-test/web:v1) is deploying." in response.content.decode()
    release = Release.objects.get()
    assert (release.version, release.image, release.description, release.author) == (
        1,
        "berth-test/web:v1",
        "First light",
        developer,
    )
    assert release.process_types == WEB_STORED  # exactly what the API stores for tests.fleet.WEB
    deployment = Deployment.objects.get()
    assert (deployment.kind, deployment.state, deployment.release) == ("release", "queued", release)
    assert AuditEvent.objects.get(action="release.release").source == "dashboard"
    assert list(Formation.objects.values_list("process_type", "quantity")) == [("web", 1)]


@pytest.mark.django_db
def test_several_process_types_make_one_release(new_app, members, dashboard_client):
    posted = {
        "image": "berth-test/web:v1",
        "process-TOTAL_FORMS": "3",
        "process-INITIAL_FORMS": "0",
        **web_row(0),
        **row(1, name="worker", command="./worker --queue 'high priority'", health_type="none"),
        **row(2),  # a blank row is left out
    }
    assert dashboard_client(members[Role.DEVELOPER]).post(DEPLOY, posted).status_code == 302
    release = Release.objects.get()
    assert sorted(release.process_types) == ["web", "worker"]
    assert release.process_types["worker"]["command"] == ["./worker", "--queue", "high priority"]
    assert release.process_types["worker"]["port"] is None
    assert sorted(Formation.objects.values_list("process_type", "quantity")) == [("web", 1), ("worker", 0)]


@pytest.mark.django_db
def test_with_every_row_blank_the_release_has_the_apis_default_web(new_app, members, dashboard_client):
    posted = {"image": "berth-test/web:v1", **MANAGEMENT, **row(0, name="", port="")}
    assert dashboard_client(members[Role.DEVELOPER]).post(DEPLOY, posted).status_code == 302
    assert Release.objects.get().process_types == stored(None)


@pytest.mark.django_db
def test_the_form_is_prefilled_from_the_target_release_so_a_new_image_is_one_field(
    organization, members, dashboard_client
):
    app_running_v1(organization, members[Role.OWNER])
    client = dashboard_client(members[Role.DEVELOPER])
    values = form_values(client.get(DEPLOY).content.decode(), DEPLOY)
    assert values["image"] == "berth-test/web:v1"
    assert (values["process-0-health_type"], values["process-0-interval_s"]) == ("http", "0.3")

    values["image"] = "berth-test/web:v2"
    assert client.post(DEPLOY, values).status_code == 302
    v1, v2 = Release.objects.filter(app__name="shop").order_by("version")
    assert (v2.version, v2.image) == (2, "berth-test/web:v2")
    assert v2.process_types == v1.process_types  # every setting kept, the advanced ones too


# --- what it refuses -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_bad_image_and_port_are_refused_with_the_apis_words_next_to_the_fields(new_app, members, dashboard_client):
    developer = members[Role.DEVELOPER]
    posted = {"image": "Not An Image!", "description": "try", **MANAGEMENT, **web_row(port="70000")}
    response = dashboard_client(developer).post(DEPLOY, posted)
    assert response.status_code == 400
    html = response.content.decode()
    api = token_client(developer).post(
        API_RELEASES, {"image": "Not An Image!", "process_types": {"web": {"port": 70000}}}, format="json"
    )
    spec = token_client(developer).post(
        API_RELEASES, {"image": "berth-test/web:v1", "process_types": {"web": {"port": 70000}}}, format="json"
    )
    assert error_of(html, "id_image") == api.json()["fields"]["image"][0]
    assert error_of(html, "id_process-0-port") == spec.json()["fields"]["process_types.web.port"][0]
    # What was typed is still there, every field of it.
    values = form_values(html, DEPLOY)
    assert (values["image"], values["description"], values["process-0-port"]) == ("Not An Image!", "try", "70000")
    assert (values["process-0-health_path"], values["process-0-interval_s"]) == ("/cgi-bin/health", "0.3")
    assert 'aria-invalid="true"' in html
    assert nothing_made()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field_id", "says"),
    [
        ({"command": "server; rm -rf /"}, "id_process-0-command", "shell operators"),
        ({"port": "80.5"}, "id_process-0-port", "The port must be a whole number from 1 to 65535."),
        ({"name": "Web"}, "id_process-0-name", "lowercase letters and digits"),
        ({"health_path": "health"}, "id_process-0-health_path", "The path must start with /"),
        ({"health_type": "command"}, "id_process-0-health_command", "A command health check needs a command."),
        ({"interval_s": "fast"}, "id_process-0-interval_s", "interval_s must be a number."),
        ({"retries": "0"}, "id_process-0-retries", "retries must be between 1 and 20."),
        ({"min_ready_s": "9999"}, "id_process-0-min_ready_s", "min_ready_s must be between 0 and 600."),
    ],
)
def test_each_refusal_of_the_specs_is_shown_by_its_input(fields, field_id, says, new_app, members, dashboard_client):
    posted = {"image": "berth-test/web:v1", **MANAGEMENT, **web_row(**fields)}
    response = dashboard_client(members[Role.DEVELOPER]).post(DEPLOY, posted)
    assert response.status_code == 400
    html = response.content.decode()
    assert says in error_of(html, field_id)
    if field_id.endswith(("interval_s", "retries", "min_ready_s", "health_command")):
        assert '<details class="advanced" open>' in html  # a refusal in the folded part unfolds it
    assert nothing_made()


@pytest.mark.django_db
def test_a_name_given_twice_is_refused_on_the_second_row(new_app, members, dashboard_client):
    posted = {
        "image": "berth-test/web:v1",
        "process-TOTAL_FORMS": "2",
        "process-INITIAL_FORMS": "0",
        **web_row(0),
        **row(1, name="web", command="./other"),
    }
    response = dashboard_client(members[Role.DEVELOPER]).post(DEPLOY, posted)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Another process type above is named web" in error_of(html, "id_process-1-name")
    assert error_of(html, "id_process-0-name") == ""
    assert nothing_made()


@pytest.mark.django_db
def test_a_quota_refusal_is_shown_above_the_form(new_app, members, dashboard_client):
    Quota.objects.create(organization=new_app.organization, max_containers=0)
    response = dashboard_client(members[Role.DEVELOPER]).post(
        DEPLOY, {"image": "berth-test/web:v1", **MANAGEMENT, **web_row()}
    )
    assert response.status_code == 400
    assert '<div class="form-errors" role="alert"><p>This would run 1 containers' in response.content.decode()
    assert nothing_made()


@pytest.mark.django_db
def test_add_process_type_shows_one_more_row_and_keeps_what_was_typed(new_app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    posted = {"image": "berth-test/web:v2", "add": "1", **MANAGEMENT, **web_row(port="9000")}
    response = client.post(DEPLOY, posted)
    assert response.status_code == 200
    values = form_values(response.content.decode(), DEPLOY)
    assert values["process-TOTAL_FORMS"] == "2"
    assert (values["image"], values["process-0-port"], values["process-1-name"]) == ("berth-test/web:v2", "9000", "")
    assert "Process type 2" in response.content.decode()
    assert nothing_made()


# --- who may deploy -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_read_only_role_gets_403_and_a_forged_deploy_changes_nothing(role, new_app, members, dashboard_client):
    client = dashboard_client(members[role])
    page = client.get(DEPLOY)
    assert page.status_code == 403 and "owner, admin or developer" in page.content.decode()
    forged = client.post(DEPLOY, {"image": "berth-test/web:v1", **MANAGEMENT, **web_row()})
    assert forged.status_code == 403
    assert nothing_made() and not AuditEvent.objects.filter(action__startswith="release.").exists()


@pytest.mark.django_db
def test_another_organizations_deploy_page_is_not_found(new_app, outsider, dashboard_client):
    client = dashboard_client(outsider)
    assert client.get(DEPLOY).status_code == 404
    assert client.post(DEPLOY, {"image": "berth-test/web:v1", **MANAGEMENT, **web_row()}).status_code == 404
    assert nothing_made()


# --- in the browser ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_refused_deploy_keeps_its_input_and_a_fix_deploys(new_app, members, page_as):
    """Proof (f): a bad image reference and a bad port, refused next to their fields, what was typed kept;
    then the fix deploys and the overview follows the release."""
    page = page_as(members[Role.DEVELOPER])
    page.goto(DEPLOY)
    assert_accessible(page)
    page.get_by_label("Image").fill("Berth-Test/Web:v1!")
    page.get_by_label("Description (optional)").fill("The first one")
    page.get_by_label("Port").fill("99999")
    page.get_by_label("Health check", exact=True).select_option("http")
    page.get_by_label("Health check path").fill("/cgi-bin/health")
    page.get_by_role("button", name="Deploy").click()

    image_field = page.locator(".field", has=page.get_by_label("Image"))
    port_field = page.locator(".field", has=page.get_by_label("Port"))
    expect(image_field.locator(".error")).to_contain_text("Give an image reference such as")
    expect(port_field.locator(".error")).to_have_text("The port must be a whole number from 1 to 65535.")
    expect(page.get_by_label("Image")).to_have_value("Berth-Test/Web:v1!")
    expect(page.get_by_label("Image")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Description (optional)")).to_have_value("The first one")
    expect(page.get_by_label("Port")).to_have_value("99999")
    expect(page.get_by_label("Health check", exact=True)).to_have_value("http")
    expect(page.get_by_label("Health check path")).to_have_value("/cgi-bin/health")
    assert nothing_made()
    assert_accessible(page)

    page.get_by_label("Image").fill("berth-test/web:v1")
    page.get_by_label("Port").fill("8080")
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text("Release v1 (berth-test/web:v1) is deploying.")).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    expect(page.locator("#activity")).to_contain_text("Queued: new release to v1.")
    release = Release.objects.get()
    assert (release.image, release.description, release.process_types["web"]["port"]) == (
        "berth-test/web:v1",
        "The first one",
        8080,
    )


@pytest.mark.django_db(transaction=True)
def test_rows_are_added_in_the_browser_and_the_form_is_sent_with_the_keyboard(new_app, members, page_as):
    page = page_as(members[Role.DEVELOPER])
    page.goto(DEPLOY)
    page.get_by_label("Image").fill("berth-test/web:v1")
    page.get_by_role("button", name="Add process type").click()
    expect(page.get_by_role("group", name="Process type 2")).to_be_visible()
    expect(page.get_by_label("Image")).to_have_value("berth-test/web:v1")

    second = page.get_by_role("group", name="Process type 2")
    second.get_by_label("Name").focus()
    page.keyboard.type("worker")
    page.keyboard.press("Tab")
    page.keyboard.type("./worker")
    page.keyboard.press("Enter")  # the form's first button is Deploy
    expect(page.get_by_text("Release v1 (berth-test/web:v1) is deploying.")).to_be_visible()
    assert sorted(Release.objects.get().process_types) == ["web", "worker"]
    assert Release.objects.get().process_types["worker"]["command"] == ["./worker"]


@pytest.mark.django_db(transaction=True)
def test_the_deploy_page_is_reached_and_filled_with_the_keyboard(new_app, members, page_as):
    page = page_as(members[Role.DEVELOPER])
    page.goto(OVERVIEW)
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Deploy":
            break
    else:
        pytest.fail("Tab never reached the Deploy tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Deploy a release")).to_be_visible()
    page.keyboard.press("Tab")
    for _ in range(30):
        if page.evaluate("document.activeElement.name") == "image":
            break
        page.keyboard.press("Tab")
    page.keyboard.type("berth-test/web:v1")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Release v1 (berth-test/web:v1) is deploying.")).to_be_visible()
    assert Release.objects.get().image == "berth-test/web:v1"
