"""The console's router and domain pages: routers registered, changed, disabled and removed through the routing
services with every change audited, refusals next to their field with nothing stored; domains read-only."""

from datetime import UTC, datetime

import pytest

from berth.audit.models import AuditEvent
from berth.fleet.models import Router
from berth.routing.models import Domain
from tests.console.rows import action, html_of, messages_of, queries_for
from tests.factories import AppFactory, DomainFactory, RouterFactory, UserFactory

pytestmark = pytest.mark.django_db

ROUTERS = "/console/fleet/router/"
DOMAINS = "/console/routing/domain/"
FORM = {
    "name": "edge-1",
    "admin_url": "unix:///run/berth/edge-1/admin.sock",
    "public_address": "203.0.113.7",
    "http_port": "8080",
    "https_port": "8443",
}


def row_of(html: str, name: str) -> str:
    start = html.index(f">{name}</a>")
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def router_events() -> list[tuple[str, str, dict]]:
    events = AuditEvent.objects.filter(action__startswith="router.").order_by("pk")
    return list(events.values_list("action", "source", "changes"))


def test_the_router_list_shows_status_and_why_apps_held_and_the_last_sync(operator_client):
    RouterFactory(
        name="local",
        status=Router.Status.UP,
        capacity=1000,
        routes=12,
        last_synced_at=datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
        http_port=8080,
        https_port=8443,
    )
    RouterFactory(name="remote", status=Router.Status.DOWN, last_error="[Errno 111] Connection refused")
    RouterFactory(name="fresh")

    html = html_of(operator_client, ROUTERS)

    local = row_of(html, "local")
    assert '<td class="field-status_and_reason">up</td>' in local
    assert "12 / 1000" in local
    assert "8080 / 8443" in local
    assert "Dec. 6, 2026" in local
    assert "down: [Errno 111] Connection refused" in row_of(html, "remote")
    assert '<td class="field-routes_held">-</td>' in row_of(html, "fresh")
    page = html_of(operator_client, f"{ROUTERS}{Router.objects.get(name='remote').pk}/change/")
    assert "[Errno 111] Connection refused" in page
    assert "caught up when it answers again" in page


def test_the_router_list_costs_the_same_queries_for_2_or_20_routers(operator_client):
    for _ in range(2):
        RouterFactory()
    few = queries_for(operator_client, ROUTERS)
    for _ in range(18):
        RouterFactory()
    assert queries_for(operator_client, ROUTERS) == few


def test_registering_a_router_goes_through_the_service_and_is_audited_once(operator_client, operator):
    response = operator_client.post(f"{ROUTERS}add/", FORM)

    assert response.status_code == 302, response.content.decode()[-3000:]
    router = Router.objects.get()
    assert (router.name, router.admin_url, router.http_port, router.https_port, router.status) == (
        "edge-1",
        FORM["admin_url"],
        8080,
        8443,
        Router.Status.PENDING,
    )
    event = AuditEvent.objects.get(action="router.register")
    assert (event.source, event.actor, event.target_id) == (AuditEvent.Source.CONSOLE, operator, str(router.pk))
    assert not AuditEvent.objects.filter(action="router.create").exists()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("admin_url", "tcp://10.0.0.5:9999", "must not listen beyond this machine"),
        ("admin_url", "http://127.0.0.1:9999", "unix:///path/admin.sock or tcp://127.0.0.1:PORT"),
        ("http_port", "70000", "A port is a whole number from 1 to 65535."),
        ("https_port", "0", "A port is a whole number from 1 to 65535."),
        ("name", "Edge 1", "Use lowercase letters"),
        ("public_address", "", "This field is required."),
    ],
)
def test_a_refused_router_form_shows_the_reason_by_the_field_and_stores_nothing(operator_client, field, value, reason):
    response = operator_client.post(f"{ROUTERS}add/", {**FORM, field: value})

    assert response.status_code == 200
    assert reason in response.context["adminform"].form.errors[field][0]
    assert not Router.objects.exists()
    assert router_events() == []


def test_a_name_taken_is_refused_by_the_form(operator_client):
    RouterFactory(name="edge-1")
    response = operator_client.post(f"{ROUTERS}add/", FORM)
    assert response.status_code == 200
    assert "already exists" in response.context["adminform"].form.errors["name"][0]
    assert Router.objects.count() == 1


def test_editing_a_router_goes_through_the_service_which_records_what_changed(operator_client):
    router = RouterFactory(name="edge-1", admin_url="unix:///run/a.sock", public_address="203.0.113.7")
    change = f"{ROUTERS}{router.pk}/change/"

    response = operator_client.post(change, {**FORM, "admin_url": "tcp://127.0.0.1:9999", "http_port": "80"})

    assert response.status_code == 302
    router.refresh_from_db()
    assert (router.name, router.admin_url, router.https_port) == ("edge-1", "tcp://127.0.0.1:9999", 8443)
    assert router_events() == [
        (
            "router.update",
            AuditEvent.Source.CONSOLE,
            {"admin_url": ["unix:///run/a.sock", "tcp://127.0.0.1:9999"], "https_port": [443, 8443]},
        )
    ]
    refused = operator_client.post(change, {**FORM, "admin_url": "tcp://192.0.2.1:9999"})
    assert refused.status_code == 200
    router.refresh_from_db()
    assert router.admin_url == "tcp://127.0.0.1:9999"
    assert len(router_events()) == 1


def test_disabling_and_activating_change_the_state_through_the_service_and_audit_it(operator_client, operator):
    chosen, other = RouterFactory(name="chosen"), RouterFactory(name="other")

    response = action(operator_client, ROUTERS, "disable", chosen)

    assert ("success", "Disabled (not kept in step): chosen.") in messages_of(response)
    assert list(Router.objects.order_by("name").values_list("state", flat=True)) == ["disabled", "active"]
    action(operator_client, ROUTERS, "disable", chosen)  # disabled already: nothing changes, nothing recorded
    action(operator_client, ROUTERS, "activate", chosen, other)
    assert list(Router.objects.order_by("name").values_list("state", flat=True)) == ["active", "active"]
    assert router_events() == [
        ("router.update", AuditEvent.Source.CONSOLE, {"state": ["active", "disabled"]}),
        ("router.update", AuditEvent.Source.CONSOLE, {"state": ["disabled", "active"]}),
    ]
    assert AuditEvent.objects.filter(action="router.update").first().actor == operator


def test_routers_are_removed_by_the_action_only_and_audited(operator_client):
    router = RouterFactory(name="edge-1")
    assert operator_client.get(f"{ROUTERS}{router.pk}/delete/").status_code == 403
    assert "delete_selected" not in html_of(operator_client, ROUTERS)

    response = action(operator_client, ROUTERS, "remove", router)

    assert ("success", "Removed edge-1.") in messages_of(response)
    assert not Router.objects.exists()
    assert router_events() == [("router.remove", AuditEvent.Source.CONSOLE, {"name": "edge-1"})]


def test_domains_are_listed_with_their_app_and_organization_and_cannot_be_changed(operator_client):
    tenant = UserFactory(email="dev@acme.test")
    domain = DomainFactory(
        app=AppFactory(name="shop", organization__slug="acme"), hostname="www.example.com", created_by=tenant
    )
    DomainFactory(app=AppFactory(name="blog", organization__slug="globex"), hostname="blog.globex.com")

    html = html_of(operator_client, DOMAINS)

    row = row_of(html, "www.example.com")
    assert '<td class="field-app_name">shop</td>' in row
    assert '<td class="field-organization">acme</td>' in row
    assert "dev@acme.test" in row
    assert "blog.globex.com" in html
    assert "www.example.com" not in html_of(operator_client, f"{DOMAINS}?q=globex")
    assert operator_client.get(f"{DOMAINS}add/").status_code == 403
    assert operator_client.get(f"{DOMAINS}{domain.pk}/delete/").status_code == 403
    operator_client.post(f"{DOMAINS}{domain.pk}/change/", {"hostname": "evil.example.com"})
    assert Domain.objects.get(pk=domain.pk).hostname == "www.example.com"


def test_the_domain_list_costs_the_same_queries_for_2_or_20_domains(operator_client):
    for _ in range(2):
        DomainFactory(created_by=UserFactory())
    few = queries_for(operator_client, DOMAINS)
    for _ in range(18):
        DomainFactory(created_by=UserFactory())
    assert queries_for(operator_client, DOMAINS) == few
