"""A whole journey in a real Chromium, on the test bed's Docker hosts with a real worker (issue 11, proof a):
a new person signs up, creates an organization and an app, deploys the test web image, scales it, changes
a config var and rolls back, seeing each result on the page as it happens, while the containers answer
over HTTP with what the page says they run."""

import re

import pytest
from django.test import override_settings
from playwright.sync_api import Page, expect

from berth.applications.models import App, Release
from berth.deployments.services import config_set, release_create
from berth.fleet.models import Container
from berth.tenancy.models import ApiToken, Invitation, Membership, User
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from tests.deployments.helpers import fetch
from tests.factories import AppFactory, SizeFactory
from tests.fleet import WEB

from .accessibility import assert_accessible

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.test"
PASSWORD = "a long and quite unguessable passphrase"
# Each wait covers one deployment on a loaded machine: images start, pass their health check, stay ready.
DEPLOY_TIMEOUT_MS = 60_000


def follow_navigations(page: Page) -> list[str]:
    """Every load of a new document in the page from now on (a reload, a link that is not boosted)."""
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))
    return loads


def live_containers(app: App) -> list[Container]:
    return list(
        Container.objects.filter(app=app, state__in=Container.LIVE)
        .select_related("host", "release")
        .order_by("process_type", "index")
    )


def expect_healthy_containers(page: Page, count: int, version: int) -> None:
    """The overview's containers table lists `count` containers, every one of release `version`, healthy."""
    rows = page.locator("#containers tbody tr")
    expect(rows).to_have_count(count, timeout=DEPLOY_TIMEOUT_MS)
    of_version = rows.filter(has=page.get_by_role("cell", name=f"v{version}", exact=True))
    expect(of_version).to_have_count(count, timeout=DEPLOY_TIMEOUT_MS)
    expect(of_version.locator(".badge.healthy")).to_have_count(count, timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#app-state")).to_contain_text(f"web: {count} of {count} running", timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#activity .badge").first).to_have_text("Succeeded", timeout=DEPLOY_TIMEOUT_MS)


def assert_containers_answer(app: App, count: int, version: int, *, greeting: str | None) -> None:
    """What runs on the hosts is what the page showed: `count` healthy containers of `version`, each
    serving the v1 image over HTTP with APP_GREETING set to `greeting` (or not set at all)."""
    live = live_containers(app)
    assert [(c.release.version, c.health) for c in live] == [(version, Container.Health.HEALTHY)] * count
    for container in live:
        assert fetch(container, "/") == (200, "web v1\n")
        status, environment = fetch(container, "/cgi-bin/env")
        assert status == 200
        variables = dict(line.split("=", 1) for line in environment.splitlines())
        assert variables.get("APP_GREETING") == greeting, container.name


@override_settings(BERTH_SIGNUP="open")
def test_a_new_person_signs_up_deploys_scales_configures_and_rolls_back(page: Page, fleet, workers):
    workers()  # started first: it takes a moment, and the deploys come later

    # Sign up through the form; with no organization yet, Berth asks for one.
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to Berth")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your Berth account")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/orgs/new/$"))
    expect(page.get_by_text("Welcome to Berth. Create an organization to put your apps in.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(EMAIL)
    ada = User.objects.get(email=EMAIL)
    assert ada.check_password(PASSWORD) and not Membership.objects.filter(user=ada).exists()

    # An organization, of which Ada is the owner.
    page.get_by_label("Name").fill("Ada's Lab")
    page.get_by_label("Slug").fill("ada-lab")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="Ada's Lab", level=1)).to_be_visible()
    expect(page.get_by_text("Created the organization Ada's Lab; you are its owner.")).to_be_visible()
    expect(page.get_by_text("This organization has no apps yet.")).to_be_visible()
    assert Membership.objects.get(user=ada).role == Role.OWNER

    # An app.
    page.get_by_role("link", name="New app").click()
    expect(page.get_by_role("heading", name="New app")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("shop")
    page.get_by_label("Description").fill("Sells things")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_text("Created the app shop.")).to_be_visible()
    page.locator("#apps").get_by_role("link", name="shop", exact=True).click()
    expect(page.get_by_role("heading", name="shop", level=1)).to_be_visible()
    expect(page.get_by_text("This app runs nothing yet.")).to_be_visible()
    app = App.objects.get(organization__slug="ada-lab", name="shop")

    # Deploy berth-test/web:v1 with the test bed's web process type, through the deploy form.
    page.get_by_role("link", name="Deploy", exact=True).click()
    expect(page.get_by_role("heading", name="Deploy a release")).to_be_visible()
    web, health = WEB["web"], WEB["web"]["health_check"]
    page.get_by_label("Image").fill("berth-test/web:v1")
    expect(page.get_by_label("Name")).to_have_value("web")
    page.get_by_label("Port").fill(str(web["port"]))
    page.get_by_label("Health check", exact=True).select_option(health["type"])
    page.get_by_label("Health check path").fill(health["path"])
    page.get_by_text("Health check timing, ready time, filesystem").click()
    page.get_by_label("Check interval (s)").fill(str(health["interval_s"]))
    page.get_by_label("Failures before unhealthy").fill(str(health["retries"]))
    page.get_by_label("Start period (s)").fill(str(health["start_period_s"]))
    page.get_by_role("button", name="Deploy").click()

    # The overview follows the deployment by itself: no reload from here to the healthy container.
    expect(page.get_by_text("Release v1 (berth-test/web:v1) is deploying.")).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    page.evaluate("window.berthMarker = 'the overview after the deploy'")
    loads = follow_navigations(page)
    expect_healthy_containers(page, 1, version=1)
    expect(page.locator("#activity")).to_contain_text("is healthy")
    expect(page.locator("#app-state dd").first).to_have_text("v1")
    expect(page.locator("#app-state")).to_contain_text("berth-test/web:v1")
    expect(page.locator("#app-state")).to_contain_text(EMAIL)
    assert page.evaluate("window.berthMarker") == "the overview after the deploy" and loads == []
    assert_containers_answer(app, 1, 1, greeting=None)
    [container] = live_containers(app)
    expect(page.locator("#containers")).to_contain_text(f"{container.host.address}:{container.published_port}")

    # Scale web to 3.
    page.get_by_label("Quantity of web").fill("3")
    page.get_by_role("button", name="Scale").click()
    expect(page.get_by_text("Scaling web to 3.")).to_be_visible()
    expect_healthy_containers(page, 3, version=1)
    assert page.evaluate("window.berthMarker") == "the overview after the deploy" and loads == []
    assert_containers_answer(app, 3, 1, greeting=None)

    # A config var, previewed, then saved: one new release, deployed to the three containers.
    page.get_by_role("link", name="Config", exact=True).click()
    expect(page.get_by_role("heading", name="Config vars", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Config", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("No config vars yet.")).to_be_visible()
    page.get_by_label("Key of new row 1", exact=True).fill("APP_GREETING")
    page.get_by_label("Value of new row 1", exact=True).fill("ahoy")
    page.get_by_role("button", name="Review the change").click()
    expect(page.get_by_role("heading", name="Review the change")).to_be_visible()
    expect(page.get_by_role("row", name="Added APP_GREETING ahoy")).to_be_visible()
    assert Release.objects.filter(app=app).count() == 1  # the preview saves nothing
    page.get_by_role("button", name="Save and deploy").click()
    expect(page.get_by_text("Config saved (APP_GREETING set): release v2 is being deployed.")).to_be_visible()
    expect(page.locator("#var-APP_GREETING")).to_be_visible()
    page.get_by_role("link", name="Overview").click()
    expect_healthy_containers(page, 3, version=2)
    expect(page.locator("#app-state dd").first).to_have_text("v2 · Set APP_GREETING")
    assert_containers_answer(app, 3, 2, greeting="ahoy")

    # Roll back to v1 from the releases page, through its confirm step.
    page.get_by_role("link", name="Releases").click()
    expect(page.get_by_role("heading", name="Releases")).to_be_visible()
    expect(page.locator("#v2")).to_contain_text("Running")
    expect(page.locator("#v2")).to_contain_text("Config added: APP_GREETING")
    page.get_by_role("link", name="Roll back to v1").click()
    expect(page.get_by_role("heading", name="Roll back to v1?")).to_be_visible()
    expect(page.get_by_role("link", name="Releases")).to_have_attribute("aria-current", "page")
    expect(page.locator("main")).to_contain_text("APP_GREETING")  # what the rollback removes, by name
    assert Release.objects.filter(app=app).count() == 2  # the confirm page changes nothing
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.get_by_text("Rolling back to v1: release v3 is being deployed.")).to_be_visible()
    expect(page.locator("#activity li").first).to_contain_text("Rollback to v3")
    expect_healthy_containers(page, 3, version=3)
    expect(page.locator("#app-state dd").first).to_have_text("v3 · Rollback to v1")
    assert_containers_answer(app, 3, 3, greeting=None)
    assert Release.objects.get(app=app, version=3).rollback_of == 1

    # The releases page and the organization's home say the same.
    page.get_by_role("link", name="Releases").click()
    expect(page.locator("#v3")).to_contain_text("Running")
    expect(page.locator("#v3")).to_contain_text("Rollback to v1")
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Apps").click()
    shop = page.locator("#apps tbody tr", has=page.get_by_role("link", name="shop", exact=True))
    expect(shop.locator(".badge")).to_have_text("Running")
    expect(shop).to_contain_text("v3")
    assert_accessible(page)


# --- the keyboard alone ------------------------------------------------------------------------------------


def tab_to(page: Page, target, presses: int = 120) -> None:
    """Press Tab until `target` has the focus, as someone without a mouse moves through a page."""
    target.wait_for()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    pytest.fail(f"Tab never reached {target}")


def press_enter_on(page: Page, target) -> None:
    tab_to(page, target)
    page.keyboard.press("Enter")


def test_the_actions_no_area_test_drives_by_keyboard_work_with_it(organization, members, page_as):
    """The app's tabs, a rollback link, revealing config, changing a role, removing a member and revoking an
    invitation through their confirm steps, filtering the audit log, deleting an app by typing its name, making
    and revoking a token, and signing out: Tab to each control and Enter, never a click."""
    owner, developer, viewer = members[Role.OWNER], members[Role.DEVELOPER], members[Role.VIEWER]
    SizeFactory(is_default=True)
    app = AppFactory(organization=organization, name="shop")
    release_create(actor=owner, app=app, image="berth-test/web:v1", process_types={"web": {}})
    config_set(actor=owner, app=app, values={"APP_GREETING": "ahoy"})
    invitation_create(actor=owner, organization=organization, email="new.person@example.test", role=Role.VIEWER)
    page = page_as(owner)
    page.goto("/orgs/acme/")
    loads = follow_navigations(page)

    # The app and its tabs; config revealed; a rollback through its confirm page.
    press_enter_on(page, page.locator("#apps").get_by_role("link", name="shop", exact=True))
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    press_enter_on(page, page.get_by_role("link", name="Config", exact=True))
    expect(page.get_by_role("link", name="Config", exact=True)).to_have_attribute("aria-current", "page")
    press_enter_on(page, page.get_by_role("button", name="Reveal all values"))
    expect(page.locator("#var-APP_GREETING")).to_contain_text("ahoy")
    press_enter_on(page, page.get_by_role("link", name="Releases"))
    expect(page.get_by_role("link", name="Releases")).to_have_attribute("aria-current", "page")
    press_enter_on(page, page.get_by_role("link", name="Roll back to v1"))
    expect(page.get_by_role("heading", name="Roll back to v1?")).to_be_visible()
    press_enter_on(page, page.get_by_role("button", name="Roll back to v1"))
    expect(page.get_by_text("Rolling back to v1: release v3 is being deployed.")).to_be_visible()
    assert Release.objects.get(app=app, version=3).rollback_of == 1

    # Members: a role changed with the arrow keys, a member removed and an invitation revoked.
    press_enter_on(page, page.get_by_role("link", name="Members"))
    tab_to(page, page.get_by_label(f"Role of {developer.email}"))
    page.keyboard.press("ArrowDown")  # developer -> viewer
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=f"Change role of {developer.email}")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"{developer.email} is now viewer.")).to_be_visible()
    press_enter_on(page, page.get_by_role("link", name=f"Remove {viewer.email}"))
    expect(page.get_by_role("heading", name=f"Remove {viewer.email}?")).to_be_visible()
    press_enter_on(page, page.get_by_role("button", name=f"Remove {viewer.email}"))
    expect(page.get_by_text(f"{viewer.email} is no longer a member.")).to_be_visible()
    press_enter_on(page, page.get_by_role("button", name="Revoke the invitation to new.person@example.test"))
    expect(page.get_by_text("The invitation to new.person@example.test is revoked.")).to_be_visible()
    assert Membership.objects.get(user=developer).role == Role.VIEWER
    assert not Membership.objects.filter(user=viewer).exists()
    assert not Invitation.objects.exists()

    # The audit log, filtered by an actor typed and sent with Enter.
    press_enter_on(page, page.get_by_role("link", name="Audit log"))
    tab_to(page, page.get_by_label("Actor (email)"))
    page.keyboard.type(owner.email)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orgs/acme/audit/\?actor="))
    expect(page.locator("table.audit tbody")).to_contain_text("membership.remove")

    # Deleting the app: the confirm step's name typed, then its button.
    press_enter_on(page, page.get_by_role("navigation", name="Organization").get_by_role("link", name="Apps"))
    press_enter_on(page, page.get_by_role("link", name="Delete shop"))
    tab_to(page, page.get_by_label("Type the app's name, shop, to delete it"))
    page.keyboard.type("shop")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Delete shop")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Deleted the app shop; its containers are being removed.")).to_be_visible()
    assert not App.objects.filter(pk=app.pk).exists()

    # A token made and revoked.
    press_enter_on(page, page.get_by_role("link", name="API tokens"))
    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("laptop")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Token", exact=True)).to_have_value(re.compile(r"^berth_"))
    press_enter_on(page, page.get_by_role("link", name="Revoke laptop"))
    press_enter_on(page, page.get_by_role("button", name="Revoke token"))
    expect(page.get_by_text("The token “laptop” is revoked")).to_be_visible()
    assert ApiToken.objects.get(user=owner, name="laptop").revoked_at is not None

    # Every step so far swapped the page in place (boosted): the keyboard never needed a full load.
    assert loads == []
    press_enter_on(page, page.get_by_role("button", name="Sign out"))
    expect(page.get_by_role("heading", name="Sign in to Berth")).to_be_visible()
