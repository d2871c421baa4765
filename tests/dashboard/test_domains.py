"""An app's Domains tab and its URLs on the overview: the hostname Berth gives the app and those added, adding
and removing one, the routing settings; each refusal by its field with nothing changed, and what each role
may see and do, as the API has it (tests/api/test_domains.py)."""

import re

import pytest

from berth.applications.models import App
from berth.audit.models import AuditEvent
from berth.fleet.models import Router
from berth.routing.models import Domain
from berth.tenancy.roles import Role
from tests.factories import AppFactory, DomainFactory, OrganizationFactory, RouterFactory

pytestmark = pytest.mark.django_db

DOMAINS = "/orgs/acme/apps/shop/domains/"
ROUTING = "/orgs/acme/apps/shop/routing/"


@pytest.fixture
def app(organization):
    RouterFactory(name="local", http_port=8080, https_port=8443)
    return AppFactory(organization=organization, name="shop")


def routing_events() -> list[tuple[str, str, dict]]:
    events = AuditEvent.objects.filter(action__in=["domain.add", "domain.remove", "app.routing"]).order_by("pk")
    return list(events.values_list("action", "source", "changes"))


def field_errors(html: str, field: str) -> list[str]:
    return re.findall(rf'<p class="error" id="id_{field}_error">([^<]*)</p>', html)


def test_the_tab_lists_the_apps_own_hostname_and_those_added_with_their_urls(app, members, dashboard_client):
    DomainFactory(app=app, hostname="www.example.com", created_by=members[Role.ADMIN])

    html = dashboard_client(members[Role.DEVELOPER]).get(DOMAINS).content.decode()

    own = html[html.index('<tr id="default-hostname">') :]
    own = own[: own.index("</tr>")]
    assert "shop.acme.localhost" in own and "Berth's" in own and "cannot be removed" in own
    assert 'href="https://shop.acme.localhost:8443"' in own
    assert 'href="http://shop.acme.localhost:8080"' in own
    assert "Remove" not in own
    assert 'href="https://www.example.com:8443"' in html
    assert f"by {members[Role.ADMIN].email}" in html
    assert 'href="/orgs/acme/apps/shop/domains/www.example.com/remove/"' in html
    assert 'name="hostname"' in html
    assert 'name="drain_timeout_s"' in html


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_read_only_role_sees_domains_and_settings_without_controls(role, app, members, dashboard_client):
    DomainFactory(app=app, hostname="www.example.com")
    App.objects.filter(pk=app.pk).update(https_only=True, drain_timeout_s=45)

    html = dashboard_client(members[role]).get(DOMAINS).content.decode()

    assert "www.example.com" in html
    assert "/remove/" not in html
    assert 'name="hostname"' not in html and 'name="drain_timeout_s"' not in html
    assert "Yes: plain HTTP is redirected to HTTPS" in html
    assert "45 s" in html
    # HTTPS only: the plain HTTP URL is not offered.
    assert "http://www.example.com:8080" not in html


def test_adding_a_domain_goes_through_the_service_and_is_recorded(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])

    response = client.post(DOMAINS, {"hostname": " WWW.Example.com "}, follow=True)

    assert response.redirect_chain == [(DOMAINS, 302)]
    assert "Added www.example.com" in response.content.decode()
    assert list(Domain.objects.values_list("app__name", "hostname", "created_by")) == [
        ("shop", "www.example.com", members[Role.DEVELOPER].pk)
    ]
    assert routing_events() == [("domain.add", "dashboard", {"hostname": "www.example.com"})]


@pytest.mark.parametrize(
    ("hostname", "reason"),
    [
        ("", "Give a hostname such as www.example.com."),
        ("www.example.com:8080", "Give the hostname alone: no scheme, port or path."),
        ("*.example.com", "Wildcard hostnames are not accepted; add each hostname."),
        ("example", "A hostname has at least two labels, such as example.com."),
        ("10.0.0.1", "Give a hostname, not an IP address."),
        ("blog.acme.localhost", "belong to Berth&#x27;s apps; this app&#x27;s own is shop.acme.localhost."),
    ],
)
def test_a_refused_hostname_is_shown_by_the_field_with_what_was_typed(app, members, dashboard_client, hostname, reason):
    response = dashboard_client(members[Role.OWNER]).post(DOMAINS, {"hostname": hostname})

    assert response.status_code == 400
    html = response.content.decode()
    assert any(reason in error for error in field_errors(html, "hostname")), field_errors(html, "hostname")
    assert f'value="{hostname}"' in html or not hostname
    assert not Domain.objects.exists()
    assert routing_events() == []


def test_a_hostname_another_tenant_has_is_refused_and_stays_theirs(app, members, dashboard_client):
    theirs = DomainFactory(app=AppFactory(organization=OrganizationFactory(slug="globex")), hostname="www.example.com")

    response = dashboard_client(members[Role.OWNER]).post(DOMAINS, {"hostname": "www.example.com"})

    assert response.status_code == 400
    assert field_errors(response.content.decode(), "hostname") == ["Another app has this hostname."]
    assert list(Domain.objects.values_list("pk", "app_id")) == [(theirs.pk, theirs.app_id)]
    assert routing_events() == []


def test_removing_a_domain_asks_first_then_removes_it_through_the_service(app, members, dashboard_client):
    DomainFactory(app=app, hostname="www.example.com")
    DomainFactory(app=app, hostname="shop.example.com")
    client = dashboard_client(members[Role.DEVELOPER])
    remove = f"{DOMAINS}www.example.com/remove/"

    confirm = client.get(remove)
    assert confirm.status_code == 200
    assert "Remove www.example.com?" in confirm.content.decode()
    assert Domain.objects.count() == 2

    response = client.post(remove, follow=True)

    assert response.redirect_chain == [(DOMAINS, 302)]
    assert "Removed www.example.com" in response.content.decode()
    assert list(Domain.objects.values_list("hostname", flat=True)) == ["shop.example.com"]
    assert routing_events() == [("domain.remove", "dashboard", {"hostname": "www.example.com"})]
    assert client.post(remove).status_code == 404


def test_only_the_apps_own_added_hostnames_can_be_removed_here(app, organization, members, dashboard_client):
    DomainFactory(app=AppFactory(organization=organization, name="blog"), hostname="blog.example.com")
    DomainFactory(app=AppFactory(organization=OrganizationFactory()), hostname="www.globex.com")
    client = dashboard_client(members[Role.OWNER])
    for hostname in ("blog.example.com", "www.globex.com", "shop.acme.localhost", "nothing.example.com"):
        assert client.get(f"{DOMAINS}{hostname}/remove/").status_code == 404, hostname
        assert client.post(f"{DOMAINS}{hostname}/remove/").status_code == 404, hostname
    assert Domain.objects.count() == 2
    assert routing_events() == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_read_only_role_is_refused_every_change(role, app, members, dashboard_client):
    DomainFactory(app=app, hostname="www.example.com")
    client = dashboard_client(members[role])

    assert client.post(DOMAINS, {"hostname": "new.example.com"}).status_code == 403
    assert client.get(f"{DOMAINS}www.example.com/remove/").status_code == 403
    assert client.post(f"{DOMAINS}www.example.com/remove/").status_code == 403
    assert client.post(ROUTING, {"https_only": "on", "drain_timeout_s": "60"}).status_code == 403
    assert list(Domain.objects.values_list("hostname", flat=True)) == ["www.example.com"]
    assert App.objects.filter(pk=app.pk, https_only=False, drain_timeout_s=30).exists()
    assert routing_events() == []


def test_another_organization_gets_404_and_changes_nothing(app, outsider, dashboard_client):
    DomainFactory(app=app, hostname="www.example.com")
    client = dashboard_client(outsider)
    assert client.get(DOMAINS).status_code == 404
    assert client.post(DOMAINS, {"hostname": "new.example.com"}).status_code == 404
    assert client.post(f"{DOMAINS}www.example.com/remove/").status_code == 404
    assert client.post(ROUTING, {"https_only": "on", "drain_timeout_s": "60"}).status_code == 404
    assert Domain.objects.count() == 1
    assert routing_events() == []


def test_routing_settings_are_saved_through_the_service_and_recorded(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])

    response = client.post(ROUTING, {"https_only": "on", "drain_timeout_s": " 120 "}, follow=True)

    assert response.redirect_chain == [(DOMAINS, 302)]
    assert "plain HTTP is redirected to HTTPS, drain timeout 120 s" in response.content.decode()
    app.refresh_from_db()
    assert (app.https_only, app.drain_timeout_s) == (True, 120)
    # Unticked: HTTPS only is off again.
    client.post(ROUTING, {"drain_timeout_s": "120"})
    assert App.objects.get(pk=app.pk).https_only is False
    assert routing_events() == [
        ("app.routing", "dashboard", {"https_only": [False, True], "drain_timeout_s": [30, 120]}),
        ("app.routing", "dashboard", {"https_only": [True, False]}),
    ]
    assert client.get(ROUTING).status_code == 302


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0", "drain_timeout_s must be a whole number of seconds from 1 to 900."),
        ("901", "drain_timeout_s must be a whole number of seconds from 1 to 900."),
        ("1.5", "drain_timeout_s must be a whole number of seconds from 1 to 900."),
        ("soon", "drain_timeout_s must be a whole number of seconds from 1 to 900."),
        ("", "This field is required."),
    ],
)
def test_a_refused_drain_timeout_is_shown_by_the_field_and_changes_nothing(
    app, members, dashboard_client, typed, reason
):
    response = dashboard_client(members[Role.OWNER]).post(ROUTING, {"https_only": "on", "drain_timeout_s": typed})

    assert response.status_code == 400
    html = response.content.decode()
    assert field_errors(html, "drain_timeout_s") == [reason]
    assert f'name="drain_timeout_s" value="{typed}"' in html or not typed
    assert App.objects.filter(pk=app.pk, https_only=False, drain_timeout_s=30).exists()
    assert routing_events() == []


def test_the_overview_links_the_apps_urls_and_its_first_domains(app, members, dashboard_client):
    for name in ("a", "b", "c", "d", "e"):
        DomainFactory(app=app, hostname=f"{name}.example.com")
    client = dashboard_client(members[Role.VIEWER])

    html = client.get("/orgs/acme/apps/shop/").content.decode()

    urls = html[html.index('<p class="app-urls">') :]
    urls = urls[: urls.index("</p>")]
    links = re.findall(r'<a href="([^"]+)"', urls)
    assert links == [
        "https://shop.acme.localhost:8443",
        "http://shop.acme.localhost:8080",
        "https://a.example.com:8443",
        "https://b.example.com:8443",
        "https://c.example.com:8443",
        DOMAINS,
    ]
    assert ">2 more</a>" in urls
    # External links are followed by the browser itself, never swapped in by htmx.
    assert urls.count('hx-boost="false"') == 5

    App.objects.filter(pk=app.pk).update(https_only=True)
    Router.objects.update(state=Router.State.DISABLED)
    html = client.get("/orgs/acme/apps/shop/").content.decode()
    assert "http://shop.acme.localhost" not in html
    assert 'href="https://shop.acme.localhost"' in html  # no active router: the standard port
