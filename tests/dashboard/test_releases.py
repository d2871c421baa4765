"""The releases page: the history with what each release changed (never a config value), and rolling
back to an earlier release through a confirm step, as the API's rollback does (issue 11, item 6)."""

import html
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from berth.applications.models import App, Formation, Release
from berth.applications.specs import ProcessType
from berth.billing.models import Quota
from berth.deployments.models import Deployment
from berth.deployments.selectors import ReleaseChanges, release_changes
from berth.deployments.services import config_set, release_create, release_rollback
from berth.tenancy.roles import Role
from tests.dashboard.accessibility import assert_accessible
from tests.factories import AppFactory, SizeFactory

WEB = {"web": {"port": 8080}}
WEB_AND_WORKER = {"web": {"port": 8080}, "worker": {"port": None, "command": ["worker"]}}
SECRETS = ("hello-secret-1", "postgres://user:pw-secret@db/shop", "changed-secret-2")


@pytest.fixture
def app(organization, members):
    SizeFactory(is_default=True)
    return AppFactory(organization=organization, name="shop")


@pytest.fixture
def history(app, members):
    """v1 first image; v2 adds two config vars; v3 changes one, removes the other; v4 a new image with a
    worker; v5 rolls back to v3. Nothing runs (no worker): every deployment stays queued."""
    owner = members[Role.OWNER]
    release_create(actor=owner, app=app, image="berth-test/web:v1", process_types=WEB, description="first")
    config_set(actor=owner, app=app, values={"GREETING": SECRETS[0], "DATABASE_URL": SECRETS[1]})
    config_set(actor=owner, app=app, values={"GREETING": SECRETS[2], "DATABASE_URL": None})
    release_create(actor=owner, app=app, image="berth-test/web:v2", process_types=WEB_AND_WORKER)
    release_rollback(actor=owner, app=app, version=3)
    return app


def url(name: str, app: App, *args) -> str:
    return reverse(f"dashboard:{name}", args=[app.organization.slug, app.name, *args])


def row_text(page: str, version: int) -> str:
    """The text of the releases table's row of `version`, tags stripped and spaces collapsed."""
    match = re.search(rf'<tr id="v{version}">(.*?)</tr>', page, re.DOTALL)
    assert match, f"no row for v{version}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.mark.django_db
def test_changes_are_computed_release_by_release(history):
    changes = dict(zip(range(5, 0, -1), release_changes(list(history.releases.order_by("-version"))), strict=True))
    assert changes[1] == ReleaseChanges(first=True)
    assert changes[2] == ReleaseChanges(config_added=("DATABASE_URL", "GREETING"))
    assert changes[3] == ReleaseChanges(config_changed=("GREETING",), config_removed=("DATABASE_URL",))
    assert changes[4] == ReleaseChanges(image_before="berth-test/web:v1", processes_added=("worker",)), (
        "the config is carried over unchanged"
    )
    assert changes[5] == ReleaseChanges(image_before="berth-test/web:v2", processes_removed=("worker",))
    assert not any(secret in repr(changes) for secret in SECRETS)


@pytest.mark.django_db
def test_the_page_shows_each_release_and_what_it_changed(history, members, dashboard_client):
    page = dashboard_client(members[Role.VIEWER]).get(url("releases", history)).content.decode()
    assert "First release" in row_text(page, 1) and "by " + members[Role.OWNER].email in row_text(page, 1)
    assert "Config added: DATABASE_URL , GREETING" in row_text(page, 2)
    assert "Config changed: GREETING" in row_text(page, 3)
    assert "Config removed: DATABASE_URL" in row_text(page, 3)
    assert "Image changed from berth-test/web:v1" in row_text(page, 4)
    assert "Process types added: worker" in row_text(page, 4)
    v5 = row_text(page, 5)
    assert "Rollback to v3" in v5 and "Process types removed: worker" in v5
    assert "Deploying" in v5, "the newest queued deployment is v5's"
    assert [int(v) for v in re.findall(r'<tr id="v(\d+)">', page)] == [5, 4, 3, 2, 1]
    for secret in SECRETS:
        assert secret not in page and html.escape(secret) not in page


@pytest.mark.django_db
def test_the_running_release_and_a_crash_looped_one_are_marked(app, members, dashboard_client):
    owner = members[Role.OWNER]
    v1, _ = release_create(actor=owner, app=app, image="berth-test/web:v1", process_types=WEB)
    v2, _ = release_create(actor=owner, app=app, image="berth-test/web:v2", process_types=WEB)
    Deployment.objects.update(state=Deployment.State.SUCCEEDED)
    App.objects.filter(pk=app.pk).update(current_release=v1)
    Release.objects.filter(pk=v2.pk).update(crash_looped_at=v2.created_at, image_digest="sha256:" + "ab" * 32)
    page = dashboard_client(members[Role.DEVELOPER]).get(url("releases", app)).content.decode()
    assert "Running" in row_text(page, 1) and "Running" not in row_text(page, 2)
    assert "Crash-looped" in row_text(page, 2) and "sha256:abababab" in row_text(page, 2)
    assert "Deploying" not in page
    assert "Roll back to v2" in row_text(page, 2)
    assert "Roll back" not in row_text(page, 1), "no rollback to the release that runs"


def add_releases(app: App, count: int) -> None:
    """`count` releases, each adding one config var, in one query."""
    Release.objects.bulk_create(
        Release(
            app=app,
            version=v,
            image=f"registry.test/shop:{v}",
            process_types={"web": ProcessType("web").as_json()},
            config={f"KEY_{k}": "x" for k in range(v)},
        )
        for v in range(1, count + 1)
    )


@pytest.mark.django_db
def test_pages_of_releases_cost_the_same_queries_whatever_the_history(
    app, members, dashboard_client, django_assert_num_queries
):
    client = dashboard_client(members[Role.DEVELOPER])
    add_releases(app, 3)
    client.get(url("releases", app))  # the session's first read
    with django_assert_num_queries(8):
        few = client.get(url("releases", app))
    assert [int(v) for v in re.findall(r'<tr id="v(\d+)">', few.content.decode())] == [3, 2, 1]
    Release.objects.filter(app=app).delete()
    add_releases(app, 60)
    with django_assert_num_queries(8):
        first = client.get(url("releases", app))
    with django_assert_num_queries(8):
        last = client.get(url("releases", app) + "?page=3")
    first_page, last_page = first.content.decode(), last.content.decode()
    assert [int(v) for v in re.findall(r'<tr id="v(\d+)">', first_page)] == list(range(60, 35, -1))
    assert "Config added: KEY_35" in row_text(first_page, 36), "the oldest row of a page is compared too"
    assert [int(v) for v in re.findall(r'<tr id="v(\d+)">', last_page)] == list(range(10, 0, -1))
    assert "Page 1 of 3" in text_of(first_page) and "Page 3 of 3" in text_of(last_page)
    assert 'rel="next"' in first_page and 'rel="next"' not in last_page


@pytest.mark.django_db
def test_the_rollback_confirm_page_costs_the_same_queries_whatever_the_history(
    app, members, dashboard_client, django_assert_num_queries
):
    client = dashboard_client(members[Role.DEVELOPER])
    for count in (3, 60):
        Release.objects.filter(app=app).delete()
        add_releases(app, count)
        App.objects.filter(pk=app.pk).update(current_release=Release.objects.get(app=app, version=count))
        client.get(url("release-rollback", app, 1))
        with django_assert_num_queries(7):
            page = text_of(client.get(url("release-rollback", app, 1)).content.decode())
        assert f"What changes from v{count} (running) Image changed from registry.test/shop:{count}" in page
        assert "Config removed: KEY_1 ," in page and f" KEY_{count - 1} " in page


@pytest.mark.django_db
def test_rollback_asks_to_confirm_then_makes_a_release_and_a_deployment(history, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    confirm = client.get(url("release-rollback", history, 2))
    assert confirm.status_code == 200
    text = text_of(confirm.content.decode())
    assert "Roll back to v2?" in text and "What changes from v5 (being deployed)" in text
    assert "Config added: DATABASE_URL" in text and "Config changed: GREETING" in text
    assert not any(secret in confirm.content.decode() for secret in SECRETS)
    assert Release.objects.filter(app=history).count() == 5, "the confirm page changes nothing"

    response = client.post(url("release-rollback", history, 2))
    assert response.status_code == 302 and response["Location"] == url("app", history)
    release = Release.objects.get(app=history, version=6)
    assert release.rollback_of == 2 and release.author == members[Role.DEVELOPER]
    assert release.config == {"GREETING": SECRETS[0], "DATABASE_URL": SECRETS[1]}
    deployment = Deployment.objects.get(release=release)
    assert (deployment.kind, deployment.state) == (Deployment.Kind.ROLLBACK, Deployment.State.QUEUED)
    assert dict(history.config_vars.values_list("key", "value")) == release.config
    shown = client.get(url("releases", history))
    assert "Rolling back to v2: release v6 is being deployed." in shown.content.decode()


@pytest.mark.django_db
def test_a_rollback_the_service_refuses_is_shown_and_changes_nothing(app, members, dashboard_client):
    """A process type without a formation row gets one (web: one container) when rolled back to, and the
    quota counts that growth."""
    owner = members[Role.OWNER]
    release_create(actor=owner, app=app, image="berth-test/web:v1", process_types=WEB)
    release_create(actor=owner, app=app, image="berth-test/web:v2", process_types={"worker": {"port": None}})
    Formation.objects.filter(app=app, process_type="web").delete()
    Quota.objects.create(organization=app.organization, max_containers=0)
    response = dashboard_client(owner).post(url("release-rollback", app, 1))
    assert response.status_code == 400
    assert "the organization&#x27;s limit is 0" in response.content.decode()
    assert "Roll back to v1?" in response.content.decode()
    assert Release.objects.filter(app=app).count() == 2
    assert Deployment.objects.filter(app=app).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_roles_without_deploy_see_no_rollback_and_a_forged_one_is_403(history, members, dashboard_client, role):
    client = dashboard_client(members[role])
    page = client.get(url("releases", history))
    assert page.status_code == 200 and "Roll back" not in page.content.decode()
    assert client.get(url("release-rollback", history, 2)).status_code == 403
    forged = client.post(url("release-rollback", history, 2))
    assert forged.status_code == 403
    assert "owner, admin or developer" in forged.content.decode()
    assert Release.objects.filter(app=history).count() == 5
    assert Deployment.objects.filter(app=history).count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.DEVELOPER])
def test_roles_with_deploy_see_a_rollback_per_earlier_release(history, members, dashboard_client, role):
    page = dashboard_client(members[role]).get(url("releases", history)).content.decode()
    assert all(f"Roll back to v{v}" in row_text(page, v) for v in range(1, 6))


@pytest.mark.django_db
def test_another_organization_and_unknown_releases_are_404(history, members, outsider, dashboard_client):
    stranger = dashboard_client(outsider)
    for path in (url("releases", history), url("release-rollback", history, 2)):
        assert stranger.get(path).status_code == 404
    assert stranger.post(url("release-rollback", history, 2)).status_code == 404
    owner = dashboard_client(members[Role.OWNER])
    assert owner.get(url("release-rollback", history, 99)).status_code == 404
    assert owner.post(url("release-rollback", history, 99)).status_code == 404
    assert owner.get(url("release-rollback", history, 2**40)).status_code == 404
    assert Release.objects.filter(app=history).count() == 5


def test_a_signed_out_visitor_is_sent_to_sign_in(client, history):
    response = client.get(url("releases", history))
    assert response.status_code == 302 and response["Location"].startswith(reverse("dashboard:signin"))


@pytest.mark.django_db(transaction=True)
def test_browser_releases_and_the_rollback_confirm_page(history, members, page_as):
    page = page_as(members[Role.DEVELOPER])
    page.goto(url("releases", history))
    expect(page.get_by_role("heading", name="Releases")).to_be_visible()
    expect(page.locator("#v2")).to_contain_text("Config added: DATABASE_URL, GREETING")
    assert_accessible(page)
    page.get_by_role("link", name="Roll back to v2").click()
    expect(page.get_by_role("heading", name="Roll back to v2?")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Roll back to v2").focus()
    overview = url("app", history)
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(overview)):
        page.keyboard.press("Enter")
    assert Release.objects.get(app=history, version=6).rollback_of == 2
