"""The organization pages: the switcher, creating an organization, and the org home's apps with their
status, release, containers and cost, searched and paginated."""

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.db.models import Max
from django.utils import timezone
from playwright.sync_api import Page, expect

from berth.applications.models import App, Formation, Release
from berth.audit.models import AuditEvent
from berth.billing.metering import usage_sync
from berth.billing.models import SizePrice
from berth.billing.selectors import usage_for_period
from berth.deployments.models import Deployment
from berth.deployments.selectors import AppStatus, app_statuses
from berth.fleet.models import Container
from berth.tenancy.models import Membership, Organization
from berth.tenancy.roles import Role, role_allows
from tests.dashboard.accessibility import assert_accessible
from tests.factories import (
    AppFactory,
    ContainerFactory,
    HostFactory,
    MembershipFactory,
    OrganizationFactory,
    SizeFactory,
)
from tests.timing import at

pytestmark = pytest.mark.django_db

HOME = "/orgs/acme/"


# Rows as the worker and the services leave them; no Docker engine is involved.


def release_of(app: App, *, current: bool = True, author=None, **fields) -> Release:
    """The app's next release, the one it runs unless `current` is False."""
    version = (app.releases.aggregate(v=Max("version"))["v"] or 0) + 1
    process_types = fields.pop("process_types", {"web": {"command": None}})
    release = Release.objects.create(
        app=app,
        version=version,
        image=f"registry.test/{app.name}:{version}",
        process_types=process_types,
        config={},
        author=author,
        **fields,
    )
    if current:
        App.objects.filter(pk=app.pk).update(current_release=release)
        app.current_release = release
    return release


def deployment_of(release: Release, state: str, kind: str = Deployment.Kind.RELEASE, **fields) -> Deployment:
    return Deployment.objects.create(app=release.app, release=release, kind=kind, state=state, **fields)


def formation_of(app: App, **quantities: int) -> None:
    for process_type, quantity in quantities.items():
        Formation.objects.update_or_create(
            app=app, process_type=process_type, defaults={"quantity": quantity, "size": SizeFactory()}
        )


def containers_of(release: Release, process_type: str = "web", *, live: int = 0, exited: int = 0) -> None:
    host = HostFactory()
    states = [Container.State.RUNNING] * live + [Container.State.EXITED] * exited
    for index, state in enumerate(states):
        ContainerFactory(
            host=host,
            app=release.app,
            release=release,
            size=SizeFactory(),
            process_type=process_type,
            index=index,
            state=state,
        )


def running_app(organization: Organization, name: str, *, web: int = 2) -> App:
    """An app whose release went live and runs as many web containers as its formation asks."""
    app = AppFactory(organization=organization, name=name)
    release = release_of(app)
    deployment_of(release, Deployment.State.SUCCEEDED)
    formation_of(app, web=web)
    containers_of(release, live=web)
    return app


def table_rows(html: str) -> dict[str, str]:
    """The apps table as a person reads it: each app's name to the text of its row."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", row)).split())
        if '<th scope="row">' in row:
            rows[text.split(" ")[0]] = text
    return rows


@pytest.fixture
def apps_in_each_state(organization, members):
    """One app of acme per situation the org home tells apart, named after what happened to it."""
    AppFactory(organization=organization, name="fresh")
    running_app(organization, "steady")

    rolling = running_app(organization, "rolling")
    deployment_of(release_of(rolling, current=False), Deployment.State.RUNNING)

    first = AppFactory(organization=organization, name="first-deploy")
    deployment_of(release_of(first, current=False), Deployment.State.QUEUED)

    broken = running_app(organization, "broken")
    deployment_of(release_of(broken, current=False), Deployment.State.FAILED, error="web.0 failed its health check.")

    recovered = running_app(organization, "recovered")
    deployment_of(release_of(recovered, current=False), Deployment.State.FAILED, error="Bad image.")
    release = release_of(recovered)
    deployment_of(release, Deployment.State.SUCCEEDED)
    containers_of(release, live=2)
    Container.objects.filter(app=recovered).exclude(release=release).update(state=Container.State.REMOVED)

    short = AppFactory(organization=organization, name="short")
    release = release_of(short)
    deployment_of(release, Deployment.State.SUCCEEDED)
    formation_of(short, web=2)
    containers_of(release, live=1, exited=1)

    healing = AppFactory(organization=organization, name="healing")
    release = release_of(healing)
    deployment_of(release, Deployment.State.SUCCEEDED)
    formation_of(healing, web=1)
    containers_of(release, exited=1)
    deployment_of(release, Deployment.State.RUNNING, kind=Deployment.Kind.HEAL)

    looped = running_app(organization, "looped")
    crashing = release_of(looped, author=members[Role.DEVELOPER], crash_looped_at=at(2020, 1, 1))
    rollback = release_of(looped, rollback_of=1)  # Berth's own: no author
    deployment_of(rollback, Deployment.State.SUCCEEDED, kind=Deployment.Kind.ROLLBACK)
    Container.objects.filter(app=looped).update(release=rollback)
    assert crashing.version == 2

    long_ago = running_app(organization, "old-loop")
    rollback = release_of(long_ago, rollback_of=1)
    Release.objects.filter(pk=rollback.pk).update(created_at=rollback.created_at - timedelta(hours=2))
    Container.objects.filter(app=long_ago).update(release=rollback)

    asleep = running_app(organization, "asleep")
    formation_of(asleep, web=0)
    Container.objects.filter(app=asleep).update(state=Container.State.REMOVED)

    # The release dropped the worker process type; its formation row stays and asks for nothing.
    dropped = running_app(organization, "dropped", web=1)
    formation_of(dropped, worker=3)


EXPECTED = {
    "fresh": (AppStatus.NEW, "nothing deployed yet"),
    "steady": (AppStatus.RUNNING, ""),
    "rolling": (AppStatus.DEPLOYING, "to v2"),
    "first-deploy": (AppStatus.DEPLOYING, "to v1"),
    "broken": (AppStatus.FAILED, "v2: web.0 failed its health check."),
    "recovered": (AppStatus.RUNNING, ""),
    "short": (AppStatus.CRASHED, "1 of 2 containers live"),
    "healing": (AppStatus.CRASHED, "0 of 1 containers live"),
    "looped": (AppStatus.CRASHED, "rolled back from a crash loop"),
    "old-loop": (AppStatus.RUNNING, ""),
    "asleep": (AppStatus.SCALED_TO_ZERO, ""),
    "dropped": (AppStatus.RUNNING, ""),
}


def test_each_app_has_the_status_its_deployments_formation_and_containers_give(
    apps_in_each_state, members, dashboard_client
):
    apps = list(App.objects.filter(organization__slug="acme").select_related("current_release"))
    statuses = app_statuses(apps, now=timezone.now())
    assert {app.name: statuses[app.pk].status for app in apps} == {name: s for name, (s, _) in EXPECTED.items()}

    rows = table_rows(dashboard_client(members[Role.VIEWER]).get(HOME).content.decode())
    for name, (status, detail) in EXPECTED.items():
        assert f"{name} An app {status.label} {detail}".rstrip() in rows[name], rows[name]
    assert "v3" in rows["looped"] and "none" in rows["fresh"]  # the release that runs
    assert "2 / 2" in rows["steady"] and "1 / 2" in rows["short"] and "0 / 0" in rows["asleep"]
    assert "1 / 1" in rows["dropped"]  # live / wanted of the process types the release has


def test_search_finds_apps_by_part_of_their_name_with_and_without_htmx(organization, members, dashboard_client):
    for name in ("shop", "shop-worker", "blog"):
        running_app(organization, name)
    client = dashboard_client(members[Role.DEVELOPER])

    page = client.get(HOME, {"q": " SHOP "})
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert sorted(table_rows(page.content.decode())) == ["shop", "shop-worker"]
    assert 'value="SHOP"' in page.content.decode()  # the search box keeps what was typed
    assert "2 apps matching “SHOP”" in page.content.decode()

    part = client.get(HOME, {"q": "blog"}, headers={"HX-Request": "true"})
    html = part.content.decode()
    assert "<html" not in html and "app-search" not in html
    assert html.lstrip().startswith('<section id="apps"')
    assert sorted(table_rows(html)) == ["blog"]
    for response in (page, part):
        assert "HX-Request" in response["Vary"]

    # A boosted navigation and htmx restoring history it has no snapshot of get the whole page.
    boosted = client.get(HOME, {"q": "blog"}, headers={"HX-Request": "true", "HX-Boosted": "true"})
    restore = client.get(HOME, {"q": "blog"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in boosted.content.decode() and "<html" in restore.content.decode()

    nothing = client.get(HOME, {"q": "nope"}).content.decode()
    assert table_rows(nothing) == {} and "No app's name contains “nope”" in unescape(nothing)


def test_fifty_apps_a_page_in_name_order_and_the_search_stays_on_the_links(organization, members, dashboard_client):
    for n in range(60):
        AppFactory(organization=organization, name=f"app-{n:02}")
    AppFactory(organization=organization, name="other")
    client = dashboard_client(members[Role.VIEWER])

    first = client.get(HOME, {"q": "app"}).content.decode()
    assert list(table_rows(first)) == [f"app-{n:02}" for n in range(50)]
    assert "Page 1 of 2" in first and "61 apps" not in first and "60 apps matching" in first
    assert 'href="/orgs/acme/?q=app&amp;page=2"' in first and 'rel="prev"' not in first

    second = client.get(HOME, {"q": "app", "page": 2}).content.decode()
    assert list(table_rows(second)) == [f"app-{n:02}" for n in range(50, 60)]
    assert "Page 2 of 2" in second and 'href="/orgs/acme/?q=app&amp;page=1"' in second

    # A page past the end shows the last one; one that is not a number, the first.
    assert list(table_rows(client.get(HOME, {"q": "app", "page": 9}).content.decode()))[:1] == ["app-50"]
    assert list(table_rows(client.get(HOME, {"page": "x"}).content.decode()))[:1] == ["app-00"]


@pytest.fixture
def usage_this_month(organization, monkeypatch):
    """shop ran 4 h and blog still runs since 6 h ago, in November 2026 (now: the 4th, 06:00 UTC); an app
    deleted since ran 1 h."""
    now = at(2026, 11, 4, 6)
    monkeypatch.setattr(timezone, "now", lambda: now)
    size = SizeFactory(name="small")
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.036"), effective_from=at(2026, 1, 1))
    host = HostFactory()
    for name, start, end in [
        ("shop", at(2026, 11, 2, 22), at(2026, 11, 3, 2)),
        ("blog", at(2026, 11, 4), None),
        ("gone", at(2026, 11, 1), at(2026, 11, 1, 1)),
    ]:
        app = AppFactory(organization=organization, name=name)
        release = release_of(app)
        container = ContainerFactory(
            host=host,
            app=app,
            release=release,
            size=size,
            started_at=start,
            finished_at=end,
            state=Container.State.REMOVED if end else Container.State.RUNNING,
        )
        usage_sync([container.pk], now=now)
    App.objects.filter(name="gone").delete()
    AppFactory(organization=organization, name="idle")
    return now


def test_cost_this_month_per_app_and_in_total_is_the_usage_report(usage_this_month, members, dashboard_client):
    report = usage_for_period(
        organization_id=Organization.objects.get(slug="acme").pk,
        period=usage_this_month.date().replace(day=1),
        group_by=("app",),
        now=usage_this_month,
    )
    assert {row["app"]: row["cost"] for row in report["rows"]} == {
        "blog": Decimal("0.22"),
        "gone": Decimal("0.04"),
        "shop": Decimal("0.14"),
    }
    html = dashboard_client(members[Role.BILLING]).get(HOME).content.decode()
    rows = table_rows(html)
    assert rows["blog"].endswith(" 0.22") and rows["shop"].endswith(" 0.14") and rows["idle"].endswith(" 0.00")
    assert "This month so far: 0.40 USD for all apps" in " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert report["total_cost"] == Decimal("0.40")

    # Cost is billing information: a developer sees the apps and no money.
    developer = dashboard_client(members[Role.DEVELOPER]).get(HOME).content.decode()
    assert "This month" not in developer and "0.22" not in developer and "blog" in table_rows(developer)


@pytest.mark.parametrize("role", Role.values)
def test_the_new_app_and_delete_controls_show_only_for_roles_that_may_use_them(
    role, organization, members, dashboard_client
):
    running_app(organization, "shop")
    html = dashboard_client(members[role]).get(HOME).content.decode()
    assert ("New app" in html) == role_allows(role, "app.create")
    assert ('href="/orgs/acme/apps/shop/delete/"' in html) == role_allows(role, "app.delete")
    assert "shop" in table_rows(html)


def test_another_organization_is_a_404_and_a_visitor_is_sent_to_sign_in(
    organization, outsider, dashboard_client, client
):
    running_app(organization, "shop")
    for path in (HOME, "/orgs/nope/", f"{HOME}?q=shop"):
        response = dashboard_client(outsider).get(path, headers={"HX-Request": "true"})
        assert response.status_code == 404 and "shop" not in response.content.decode()
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith("/signin/?next=/orgs/acme/")


def seed_apps(organization, count: int) -> None:
    """`count` apps in every state the org home tells apart, each with releases, deployments and containers."""
    for n in range(count):
        app = running_app(organization, f"app-{n:03}", web=1 + n % 3)
        match n % 5:
            case 1:
                deployment_of(release_of(app, current=False), Deployment.State.RUNNING)
            case 2:
                deployment_of(release_of(app, current=False), Deployment.State.FAILED, error="Bad image.")
            case 3:
                Container.objects.filter(app=app).update(state=Container.State.EXITED)
            case 4:
                formation_of(app, web=0, worker=0)


@pytest.mark.parametrize("count", [3, 60])
def test_the_org_home_reads_the_same_number_of_queries_for_3_and_60_apps(
    count, organization, members, dashboard_client, django_assert_num_queries
):
    seed_apps(organization, count)
    client = dashboard_client(members[Role.OWNER])
    client.get(HOME)  # the first request warms the session
    # Session, user, membership; a count and a page of apps; two for their statuses; the month's usage
    # (its savepoint, lock, roll-up mark, report and release); the switcher's organizations.
    with django_assert_num_queries(13):
        response = client.get(HOME)
    assert len(table_rows(response.content.decode())) == min(count, 50)
    with django_assert_num_queries(12):  # the list alone: no switcher
        client.get(HOME, {"q": "app-0", "page": 2}, headers={"HX-Request": "true"})


# Creating an organization.


def test_a_person_creates_an_organization_and_becomes_its_owner(user, dashboard_client):
    client = dashboard_client(user)
    assert client.get("/").url == "/orgs/new/"  # nobody's member yet: the way in is creating one
    response = client.post("/orgs/new/", {"name": "Initech", "slug": "initech"}, follow=True)
    assert response.redirect_chain == [("/orgs/initech/", 302)]
    assert "Created the organization Initech; you are its owner." in response.content.decode()
    assert Membership.objects.get(organization__slug="initech", user=user).role == Role.OWNER
    event = AuditEvent.objects.get(action="organization.create")
    assert (event.actor, event.source) == (user, "dashboard")


@pytest.mark.parametrize(
    ("slug", "error"),
    [
        ("Init Tech", "Use lowercase letters, digits and single hyphens"),
        ("acme", "An organization with this slug already exists."),
        ("x" * 41, "Ensure this field has no more than 40 characters."),
    ],
)
def test_a_refused_organization_keeps_what_was_typed_with_the_error_at_the_slug(
    slug, error, organization, user, dashboard_client
):
    response = dashboard_client(user).post("/orgs/new/", {"name": "Initech <Corp>", "slug": slug})
    html = response.content.decode()
    assert response.status_code == 400
    slug_field = html[html.index('<label for="id_slug"') : html.index("</div>", html.index('<label for="id_slug"'))]
    assert error in slug_field and f'value="{slug}"' in slug_field
    assert 'value="Initech &lt;Corp&gt;"' in html
    assert Organization.objects.count() == 1 and not Membership.objects.filter(user=user).exists()


def test_a_blank_name_is_refused_at_the_name(user, dashboard_client):
    response = dashboard_client(user).post("/orgs/new/", {"name": "  ", "slug": "initech"})
    html = response.content.decode()
    assert response.status_code == 400 and 'value="initech"' in html
    name_field = html[html.index('<label for="id_name"') : html.index('<label for="id_slug"')]
    assert "This field is required." in name_field
    assert not Organization.objects.filter(slug="initech").exists()


def test_creating_an_organization_needs_a_signed_in_person(client, db):
    response = client.post("/orgs/new/", {"name": "Initech", "slug": "initech"})
    assert response.status_code == 302 and response["Location"].startswith("/signin/")
    assert not Organization.objects.exists()


def test_the_create_organization_page_reads_only_the_session_and_the_switcher(
    user, dashboard_client, django_assert_num_queries
):
    client = dashboard_client(user)
    client.get("/orgs/new/")
    with django_assert_num_queries(3):  # session, user, the switcher's organizations
        assert client.get("/orgs/new/").status_code == 200


# In a real Chromium.


def test_switching_organization_with_the_keyboard(page_as, organization, members):
    owner = members[Role.OWNER]
    MembershipFactory(user=owner, organization=OrganizationFactory(slug="initech", name="Initech"), role=Role.VIEWER)
    running_app(organization, "shop")
    page: Page = page_as(owner)
    page.goto(HOME)
    expect(page.get_by_role("heading", name="Acme", level=1)).to_be_visible()
    assert_accessible(page)

    switcher = page.locator(".switcher summary")
    switcher.focus()
    page.keyboard.press("Enter")
    initech = page.get_by_role("link", name="Initech")
    expect(initech).to_be_visible()
    expect(page.get_by_role("link", name="Acme")).to_have_attribute("aria-current", "page")
    page.keyboard.press("Tab")  # Acme, the organization shown
    page.keyboard.press("Tab")
    expect(initech).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orgs/initech/$"))
    expect(page.get_by_role("heading", name="Initech", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="New app")).to_have_count(0)  # a viewer there


def test_creating_an_organization_in_the_browser_keeps_a_refused_slug(page_as, organization, user):
    page: Page = page_as(user)
    page.goto("/orgs/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill("Acme Two")
    page.get_by_label("Slug").fill("acme")
    page.get_by_label("Slug").press("Enter")
    expect(page.get_by_text("An organization with this slug already exists.")).to_be_visible()
    expect(page.get_by_label("Slug")).to_have_value("acme")
    expect(page.get_by_label("Name")).to_have_value("Acme Two")
    assert_accessible(page)
    page.get_by_label("Slug").fill("acme-two")
    page.get_by_label("Slug").press("Enter")
    expect(page.get_by_role("heading", name="Acme Two", level=1)).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("you are its owner")
