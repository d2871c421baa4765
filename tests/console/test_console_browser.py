"""What an operator and a tenant see in the operator console and the API docs, in a real Chromium."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from berth.audit.models import AuditEvent
from berth.tenancy.models import User
from berth.tenancy.roles import Role
from berth.tenancy.services import api_token_create, organization_create
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAST_OWNER_ERROR = "An organization must keep at least one owner."


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/console/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_in_operator(page: Page, operator: User) -> None:
    log_in(page, operator.email)
    expect(page.locator("#site-name")).to_have_text("Berth console")


def test_operator_finds_an_organization_reads_the_audit_log_and_renames_it(page: Page, operator):
    founder = UserFactory(email="peter@initech.test")
    initech = organization_create(actor=founder, slug="initech", name="Initech")
    MembershipFactory(organization=initech, user__email="milton@initech.test", role=Role.DEVELOPER)
    OrganizationFactory(slug="umbrella", name="Umbrella")

    log_in_operator(page, operator)
    expect(page.get_by_role("heading", name="Operate the installation")).to_be_visible()

    page.locator("#content-main").get_by_role("link", name="Organizations", exact=True).click()
    page.locator("#searchbar").fill("initech")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#result_list")
    expect(results.get_by_role("link", name="initech", exact=True)).to_be_visible()
    expect(results).not_to_contain_text("umbrella")

    results.get_by_role("link", name="initech", exact=True).click()
    members = page.locator(".inline-group")
    expect(members).to_contain_text("peter@initech.test")
    expect(members).to_contain_text("Owner")
    expect(members).to_contain_text("milton@initech.test")
    expect(members).to_contain_text("Developer")
    organization_page = page.url

    page.goto("/console/audit/auditevent/")
    log = page.locator("#result_list")
    expect(log).to_contain_text("organization.create")
    expect(log).to_contain_text("peter@initech.test")

    page.goto(organization_page)
    page.get_by_label("Name:").fill("Initech Corporation")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    initech.refresh_from_db()
    assert initech.name == "Initech Corporation"
    event = AuditEvent.objects.get(action="organization.update")
    assert event.source == AuditEvent.Source.CONSOLE
    assert event.actor == operator
    assert event.actor_email == operator.email
    assert event.organization == initech
    assert event.ip_address == "127.0.0.1"

    page.goto("/console/audit/auditevent/")
    expect(page.locator("#result_list tbody tr").first).to_contain_text("organization.update")


def test_tenant_user_cannot_log_in_to_the_console(page: Page):
    tenant = MembershipFactory(role=Role.OWNER, user__email="owner@tenant.test").user

    log_in(page, tenant.email)
    expect(page.locator(".errornote")).to_contain_text("staff account")

    page.goto("/console/")
    assert urlsplit(page.url).path == "/console/login/"
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Operate the installation")).to_have_count(0)


def test_console_shows_an_api_tokens_prefix_but_never_its_secret(page: Page, operator):
    owner = UserFactory(email="deployer@tenant.test")
    api_token, plaintext = api_token_create(actor=owner, name="ci deploy")
    secret = plaintext.removeprefix(f"{api_token.prefix}_")
    assert secret != plaintext  # the token's shape is the one the check below relies on

    def assert_no_secret_in(html: str) -> None:
        assert api_token.prefix in html
        assert plaintext not in html
        assert secret not in html
        assert api_token.digest not in html

    log_in_operator(page, operator)
    page.goto("/console/tenancy/apitoken/")
    row = page.locator("#result_list tbody tr", has_text=api_token.prefix)
    expect(row).to_contain_text("ci deploy")
    assert_no_secret_in(page.content())

    row.get_by_role("link", name=api_token.prefix).click()
    expect(page.locator("#content")).to_contain_text("deployer@tenant.test")
    assert_no_secret_in(page.content())

    page.goto("/console/tenancy/apitoken/")
    row.get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label="Revoke selected tokens")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Revoked at")

    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoke")
    assert (event.actor, event.source) == (operator, AuditEvent.Source.CONSOLE)


def test_api_docs_render_from_the_servers_own_assets(page: Page, live_server):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto("/api/docs/")
    expect(page.locator(".information-container .title")).to_contain_text("Berth API")
    expect(page.locator('.opblock-summary-path[data-path="/api/v1/orgs/"]').first).to_be_visible()
    page.wait_for_load_state("networkidle")

    origin = urlsplit(live_server.url)
    # The page did load its assets and the schema, so the check below looks at real traffic.
    assert any(urlsplit(url).path == "/api/schema" for url in requested)
    assert any(url.endswith("/swagger-ui-bundle.js") for url in requested)
    foreign = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob")
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert foreign == []


def test_console_keeps_an_organizations_last_owner(page: Page, operator):
    organization = OrganizationFactory(slug="solo")
    owner = MembershipFactory(organization=organization, role=Role.OWNER, user__email="only-owner@solo.test")
    developer = MembershipFactory(organization=organization, role=Role.DEVELOPER)

    log_in_operator(page, operator)
    page.goto(f"/console/tenancy/membership/{owner.pk}/change/")
    expect(page.locator("#content")).to_contain_text("only-owner@solo.test")
    expect(page.get_by_role("link", name="Delete", exact=True)).to_have_count(0)

    page.get_by_label("Role:").select_option("developer")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errorlist")).to_contain_text(LAST_OWNER_ERROR)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER

    # Any other membership can be deleted: the missing link above is the last-owner rule, not the page.
    page.goto(f"/console/tenancy/membership/{developer.pk}/change/")
    expect(page.get_by_role("link", name="Delete", exact=True)).to_be_visible()
