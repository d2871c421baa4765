"""Every page of an app carries the same tabs: Overview, Deploy, Releases, Metrics, Config, Domains, Runs and Logs, the
ones a role may open and no other, and the page shown marked as the current one."""

import re
from html import unescape

import pytest
from django.urls import reverse

from berth.applications.models import App
from berth.deployments.services import config_set, release_create
from berth.routing.services import domain_add
from berth.tenancy.roles import Action, Role, role_allows
from tests.factories import AppFactory, SizeFactory

pytestmark = pytest.mark.django_db

# Each tab: its label, the view it opens and the action a role needs to see it.
TABS = [
    ("Overview", "app", Action.APP_VIEW),
    ("Deploy", "app-deploy", Action.APP_DEPLOY),
    ("Releases", "releases", Action.APP_VIEW),
    ("Metrics", "metrics", Action.APP_VIEW),
    ("Config", "config", Action.CONFIG_VIEW),
    ("Domains", "domains", Action.APP_VIEW),
    ("Runs", "runs", Action.APP_VIEW),
    ("Logs", "app-logs", Action.LOG_VIEW),
]


@pytest.fixture
def app(organization, members) -> App:
    """An app with two releases (v2 sets a config var), so it has a release to roll back to."""
    SizeFactory(is_default=True)
    app = AppFactory(organization=organization, name="shop")
    release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1", process_types={"web": {}})
    config_set(actor=members[Role.OWNER], app=app, values={"GREETING": "hello"})
    domain_add(actor=members[Role.OWNER], app=app, hostname="www.example.com")
    return app


def url(view: str, *args) -> str:
    return reverse(f"dashboard:{view}", args=["acme", "shop", *args])


# Each page of an app: how it is asked for, the action it needs, and the tab it belongs to.
PAGES = {
    "overview": ("get", url("app"), {}, Action.APP_VIEW, "Overview"),
    "deploy": ("get", url("app-deploy"), {}, Action.APP_DEPLOY, "Deploy"),
    "releases": ("get", url("releases"), {}, Action.APP_VIEW, "Releases"),
    "rollback confirm": ("get", url("release-rollback", 1), {}, Action.APP_DEPLOY, "Releases"),
    "metrics": ("get", url("metrics"), {}, Action.APP_VIEW, "Metrics"),
    "metrics for a day": ("get", url("metrics"), {"period": "day"}, Action.APP_VIEW, "Metrics"),
    "config": ("get", url("config"), {}, Action.CONFIG_VIEW, "Config"),
    "config preview": (
        "post",
        url("config"),
        {"rows": "3", "known": "GREETING", "new_key_0": "LOG_LEVEL", "new_value_0": "debug"},
        Action.APP_DEPLOY,
        "Config",
    ),
    "domains": ("get", url("domains"), {}, Action.APP_VIEW, "Domains"),
    "domain remove confirm": ("get", url("domain-remove", "www.example.com"), {}, Action.DOMAIN_MANAGE, "Domains"),
    "domains refused": ("post", url("domains"), {"hostname": "*.example.com"}, Action.DOMAIN_MANAGE, "Domains"),
    "routing refused": ("post", url("app-routing"), {"drain_timeout_s": "0"}, Action.APP_UPDATE, "Domains"),
    "logs": ("get", url("app-logs"), {}, Action.LOG_VIEW, "Logs"),
    "logs refused": ("get", url("app-logs"), {"source": "kernel"}, Action.LOG_VIEW, "Logs"),
    "runs": ("get", url("runs"), {}, Action.APP_VIEW, "Runs"),
    "runs refused": ("post", url("runs"), {"command": "a && b"}, Action.APP_DEPLOY, "Runs"),
}


def tab_bars(html: str) -> list[list[tuple[str, str, bool]]]:
    """Each `nav.tabs` of the page as its links: (label, href, marked current)."""
    bars = re.findall(r'<nav class="tabs"[^>]*>(.*?)</nav>', html, re.DOTALL)
    links = r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>'
    return [[(unescape(label), href, bool(current)) for href, current, label in re.findall(links, bar)] for bar in bars]


@pytest.mark.parametrize(
    ("page", "role"),
    [(page, role) for page, spec in PAGES.items() for role in Role.values if role_allows(role, spec[3])],
)
def test_every_app_page_has_the_tabs_the_role_may_open_with_its_own_marked(page, role, app, members, dashboard_client):
    method, address, data, _, current = PAGES[page]
    response = getattr(dashboard_client(members[role]), method)(address, data)
    assert response.status_code == (400 if page.endswith("refused") else 200)
    expected = [(label, url(view), label == current) for label, view, action in TABS if role_allows(role, action)]
    assert tab_bars(response.content.decode()) == [expected]


def test_a_viewer_sees_overview_releases_metrics_domains_and_logs_only(app, members, dashboard_client):
    """The role table's answer, spelled out: a viewer may neither deploy nor read config, but reads logs."""
    html = dashboard_client(members[Role.VIEWER]).get(url("releases")).content.decode()
    assert [label for label, _, _ in tab_bars(html)[0]] == [
        "Overview",
        "Releases",
        "Metrics",
        "Domains",
        "Runs",
        "Logs",
    ]
