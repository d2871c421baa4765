"""The Logs tab: the newest lines that match its filters, as text, and the download; in a real Chromium against
the web process as the Procfile starts it, the live view: lines as they are stored, pause and resume, the cap on
lines kept in the page, filters, and markup an app prints shown as text. Who may open it is in test_access.py."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from berth.applications.models import App
from berth.logs import store
from berth.logs.lines import clean, ns_of
from berth.logs.store import Entry
from berth.tenancy.roles import Role
from tests.browser import TIMEOUT_MS
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory

PAGE = "/orgs/acme/apps/shop/logs/"
DOWNLOAD = "/orgs/acme/apps/shop/logs/download/"


@pytest.fixture
def shop(organization):
    app = App.objects.create(organization=organization, name="shop")
    store.client().delete(store.stream_key(app.pk))
    yield app
    store.client().delete(store.stream_key(app.pk))


def write(app, texts, *, process="web.1", **fields) -> None:
    base = ns_of(timezone.now())
    kind = process.split(".")[0]
    store.append(
        app.pk, [Entry(base + i, t, process=process, process_type=kind, **fields) for i, t in enumerate(texts)]
    )


@pytest.mark.django_db
def test_the_page_shows_the_newest_lines_as_text_and_tails_after_the_last(shop, members, dashboard_client):
    write(shop, ["listening on 8080", clean("<script>alert('x')</script>")])
    store.say(shop.pk, "deploy", "Release v1 is live")
    response = dashboard_client(members[Role.VIEWER]).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "listening on 8080" in html and "berth[deploy]" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    stream = re.search(r'data-stream="([^"]+)"', html).group(1)
    assert stream.startswith("/api/v1/orgs/acme/apps/shop/logs/stream/?lines=0&amp;after=")
    assert stream.endswith(store.last_id(shop.pk))


@pytest.mark.django_db
def test_filters_are_the_api_s_and_a_bad_one_is_named(shop, members, dashboard_client):
    write(shop, ["GET / 200", "GET /admin 404"])
    write(shop, ["job done"], process="worker.1")
    client = dashboard_client(members[Role.DEVELOPER])
    html = client.get(PAGE, {"process_type": "web", "search": "admin"}).content.decode()
    assert "GET /admin 404" in html and "GET / 200" not in html and "job done" not in html
    assert "search=admin" in re.search(r'data-stream="([^"]+)"', html).group(1)
    refused = client.get(PAGE, {"source": "kernel"})
    assert refused.status_code == 400
    assert "source: The source is one of: app, berth." in refused.content.decode()


@pytest.mark.django_db
def test_download_gives_the_matching_lines_as_a_text_file(shop, members, dashboard_client):
    write(shop, [f"line {i}" for i in range(300)])
    write(shop, ["other"], process="worker.1")
    response = dashboard_client(members[Role.VIEWER]).get(DOWNLOAD, {"process_type": "web"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="shop-logs-')
    lines = response.content.decode().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [f"line {i}" for i in range(300)]
    assert dashboard_client(members[Role.VIEWER]).get(DOWNLOAD, {"lines": "x"}).status_code == 400


@pytest.mark.django_db
def test_the_tab_is_there_for_roles_that_may_read_logs(shop, members, dashboard_client):
    link = 'href="/orgs/acme/apps/shop/logs/"'
    assert link in dashboard_client(members[Role.VIEWER]).get("/orgs/acme/apps/shop/").content.decode()
    assert link not in dashboard_client(members[Role.BILLING]).get("/orgs/acme/apps/shop/").content.decode()
    assert dashboard_client(members[Role.BILLING]).get(PAGE).status_code == 403


@pytest.mark.django_db
def test_another_tenant_s_app_of_the_same_name_shows_none_of_its_lines(shop, members, dashboard_client):
    other = AppFactory(organization=OrganizationFactory(slug="globex"), name="shop")
    other_owner = MembershipFactory(organization=other.organization, role=Role.OWNER).user
    store.client().delete(store.stream_key(other.pk))
    try:
        write(other, ["globex secret"])
        write(shop, ["acme line"])
        html = dashboard_client(members[Role.OWNER]).get(PAGE).content.decode()
        assert "acme line" in html and "globex secret" not in html
        assert dashboard_client(other_owner).get(PAGE).status_code == 404
        assert dashboard_client(other_owner).get(DOWNLOAD).status_code == 404
    finally:
        store.client().delete(store.stream_key(other.pk))


# --- in the browser, against the ASGI web process ------------------------------------------------------------


@pytest.fixture
def logs_page(browser, web_server, members):
    """`logs_page(user)`: a Chromium page signed in as `user` on the web process (a real session cookie)."""
    contexts = []

    def make(user):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context = browser.new_context(base_url=web_server.url, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": web_server.url}])
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def live(page) -> None:
    expect(page.locator("#log-view.live")).to_be_visible()


@pytest.mark.django_db(transaction=True)
def test_the_live_view_follows_pauses_caps_and_escapes(shop, members, logs_page):
    write(shop, ["already there"])
    page = logs_page(members[Role.VIEWER])
    page.goto(PAGE)
    lines = page.locator("#log-lines > li")
    expect(lines).to_have_count(1)
    live(page)

    write(shop, [clean('<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>')])
    expect(lines).to_have_count(2)
    expect(lines.nth(1).locator(".log-text")).to_have_text(
        '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    )
    assert page.evaluate("window.pwned") is None
    assert page.locator("#log-lines img, #log-lines script").count() == 0

    page.get_by_role("button", name="Pause").click()
    write(shop, ["while paused"])
    expect(page.locator("#log-status")).to_contain_text("paused, 1 waiting")
    expect(lines).to_have_count(2)
    page.get_by_role("button", name="Resume").click()
    expect(lines).to_have_count(3)
    expect(lines.nth(2)).to_contain_text("while paused")

    # A chatty app: the page keeps the newest lines up to the cap, never more.
    page.get_by_label("Keep at most").fill("100")
    page.get_by_label("Keep at most").dispatch_event("change")
    write(shop, [f"burst {i}" for i in range(250)])
    expect(lines.last).to_contain_text("burst 249")
    expect(lines).to_have_count(100)
    expect(lines.first).to_contain_text("burst 150")
    expect(page.locator("#log-status")).to_contain_text("older ones dropped")


@pytest.mark.django_db(transaction=True)
def test_filters_and_download_in_the_browser(shop, members, logs_page):
    write(shop, ["GET / 200"])
    store.say(shop.pk, "deploy", "Release v1 is live")
    page = logs_page(members[Role.DEVELOPER])
    page.goto(PAGE)
    page.get_by_label("Source").select_option("berth")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"source=berth"))
    lines = page.locator("#log-lines > li")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("berth[deploy]: Release v1 is live")
    live(page)
    write(shop, ["an app line, filtered out"])
    store.say(shop.pk, "router", "web.1 joined")
    expect(lines).to_have_count(2)
    expect(lines.last).to_contain_text("web.1 joined")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    with open(download.value.path()) as downloaded:
        text = downloaded.read()
    assert "berth[deploy]: Release v1 is live" in text and "berth[router]: web.1 joined" in text
    assert "app[web.1]" not in text


@pytest.mark.django_db
def test_a_log_store_that_does_not_answer_is_said_on_the_page(shop, own_redis, members, dashboard_client):
    own_redis.stop()
    client = dashboard_client(members[Role.VIEWER])
    response = client.get(PAGE)
    assert response.status_code == 503
    assert "The log store does not answer" in response.content.decode()
    assert client.get(DOWNLOAD).status_code == 503
