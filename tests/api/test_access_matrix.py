"""Every API route against every role and a foreign tenant (issue: "Must hold", first point).

The expectations below are written by hand, independently of the views' own declarations.
`test_every_route_has_expectations` fails the day a route is added without a row here, so a
new endpoint is covered from the start.
"""

import json
from datetime import date

import pytest
from rest_framework.test import APIClient

from berth.api import urls as api_urls
from berth.applications.models import App
from berth.applications.registries import registry_credential_set
from berth.audit.models import AuditEvent
from berth.billing.models import Invoice
from berth.deployments.models import Run
from berth.deployments.services import release_create
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from tests.conftest import token_client
from tests.factories import (
    AppFactory,
    ContainerFactory,
    DomainFactory,
    HostFactory,
    MembershipFactory,
    RouterFactory,
    SizeFactory,
    UserFactory,
)

ALL = set(Role.values)
MANAGERS = {Role.OWNER, Role.ADMIN}
BUILDERS = {Role.OWNER, Role.ADMIN, Role.DEVELOPER}
BILLERS = {Role.OWNER, Role.ADMIN, Role.BILLING}
LOG_READERS = {Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.VIEWER}
SUCCESS = {"GET": 200, "POST": 201, "PATCH": 200, "PUT": 200, "DELETE": 204}
APP = "/orgs/{org}/apps/{app}"

# (route name, method) -> roles that may do it, the path, and the body sent.
ORG_ROUTES = {
    ("organization-detail", "GET"): (ALL, "/orgs/{org}/", None),
    ("organization-detail", "PATCH"): (MANAGERS, "/orgs/{org}/", {"name": "Renamed"}),
    # 409: the world has an invoice, and an organization with billing history is kept (tests/billing).
    ("organization-detail", "DELETE"): ({Role.OWNER}, "/orgs/{org}/", None, 409),
    ("membership-list", "GET"): (ALL, "/orgs/{org}/members/", None),
    ("membership-detail", "GET"): (ALL, "/orgs/{org}/members/{member}/", None),
    ("membership-detail", "PATCH"): (MANAGERS, "/orgs/{org}/members/{member}/", {"role": "viewer"}),
    ("membership-detail", "DELETE"): (MANAGERS, "/orgs/{org}/members/{member}/", None),
    ("invitation-list", "GET"): (MANAGERS, "/orgs/{org}/invitations/", None),
    ("invitation-list", "POST"): (
        MANAGERS,
        "/orgs/{org}/invitations/",
        {"email": "new@example.test", "role": "viewer"},
    ),
    ("invitation-detail", "GET"): (MANAGERS, "/orgs/{org}/invitations/{invitation}/", None),
    ("invitation-detail", "DELETE"): (MANAGERS, "/orgs/{org}/invitations/{invitation}/", None),
    ("app-list", "GET"): (ALL, "/orgs/{org}/apps/", None),
    ("app-list", "POST"): (BUILDERS, "/orgs/{org}/apps/", {"name": "fresh-app"}),
    ("app-detail", "GET"): (ALL, "/orgs/{org}/apps/{app}/", None),
    ("app-detail", "PATCH"): (BUILDERS, "/orgs/{org}/apps/{app}/", {"description": "changed"}),
    ("app-detail", "DELETE"): (BUILDERS, "/orgs/{org}/apps/{app}/", None),
    ("audit-event-list", "GET"): (MANAGERS, "/orgs/{org}/audit-events/", None),
    ("audit-event-detail", "GET"): (MANAGERS, "/orgs/{org}/audit-events/{event}/", None),
    ("registry-credential-list", "GET"): (BUILDERS, "/orgs/{org}/registry-credentials/", None),
    ("registry-credential-list", "POST"): (
        MANAGERS,
        "/orgs/{org}/registry-credentials/",
        {"registry": "registry.example.com", "username": "deploy", "password": "s3cret"},
    ),
    ("registry-credential-detail", "GET"): (BUILDERS, "/orgs/{org}/registry-credentials/{credential}/", None),
    ("registry-credential-detail", "DELETE"): (MANAGERS, "/orgs/{org}/registry-credentials/{credential}/", None),
    ("release-list", "GET"): (ALL, f"{APP}/releases/", None),
    ("release-list", "POST"): (BUILDERS, f"{APP}/releases/", {"image": "berth-test/web:v2"}),
    ("release-detail", "GET"): (ALL, f"{APP}/releases/1/", None),
    ("release-rollback", "POST"): (BUILDERS, f"{APP}/releases/rollback/", {"version": 1}),
    ("deployment-list", "GET"): (ALL, f"{APP}/deployments/", None),
    ("deployment-detail", "GET"): (ALL, APP + "/deployments/{deployment}/", None),
    ("container-list", "GET"): (ALL, f"{APP}/containers/", None),
    ("container-detail", "GET"): (ALL, APP + "/containers/{container}/", None),
    ("container-restart", "POST"): (BUILDERS, f"{APP}/containers/restart/", {}, 202),
    ("container-exits", "GET"): (ALL, f"{APP}/containers/exits/", None),
    ("config", "GET"): (BUILDERS, f"{APP}/config/", None),
    ("config", "PATCH"): (BUILDERS, f"{APP}/config/", {"config": {"GREETING": "hello"}}, 202),
    ("formation", "GET"): (ALL, f"{APP}/formation/", None),
    ("metrics", "GET"): (ALL, f"{APP}/metrics/", None),
    ("logs", "GET"): (LOG_READERS, f"{APP}/logs/", None),
    # The test client is WSGI, where the live tail answers 503 after the same checks as under ASGI (it streams
    # only from the ASGI web process: tests/logs/test_tail.py reads it there, refusals included).
    ("log-stream", "GET"): (LOG_READERS, f"{APP}/logs/stream/", None, 503),
    ("domain-list", "GET"): (ALL, f"{APP}/domains/", None),
    ("domain-list", "POST"): (BUILDERS, f"{APP}/domains/", {"hostname": "www.example.com"}),
    ("domain-detail", "GET"): (ALL, APP + "/domains/{domain}/", None),
    ("domain-detail", "DELETE"): (BUILDERS, APP + "/domains/{domain}/", None),
    ("usage", "GET"): (BILLERS, "/orgs/{org}/usage/", None),
    ("invoice-list", "GET"): (BILLERS, "/orgs/{org}/invoices/", None),
    ("invoice-detail", "GET"): (BILLERS, "/orgs/{org}/invoices/2026-10/", None),
    ("quota", "GET"): (ALL, "/orgs/{org}/quota/", None),
    ("formation", "PATCH"): (BUILDERS, f"{APP}/formation/", {"formation": {"web": {"quantity": 2}}}, 202),
    # The world's app has no canary: reading it is a 404, changing it a 409 (tests/routing/test_canary.py).
    ("canary", "GET"): (ALL, f"{APP}/canary/", None, 404),
    ("canary", "PATCH"): (BUILDERS, f"{APP}/canary/", {"weight": 20}, 409),
    ("canary-promote", "POST"): (BUILDERS, f"{APP}/canary/promote/", {}, 409),
    ("canary-abort", "POST"): (BUILDERS, f"{APP}/canary/abort/", {}, 409),
    ("run-list", "GET"): (ALL, f"{APP}/runs/", None),
    ("run-list", "POST"): (BUILDERS, f"{APP}/runs/", {"command": "echo hello"}, 202),
    ("run-detail", "GET"): (ALL, APP + "/runs/{run}/", None),
}

# Operator (staff) routes: tenants of any role get 403 (the fleet is not theirs to see).
OPERATOR_ROUTES = {
    ("host-list", "GET"): ("/fleet/hosts/", None, 200),
    # 400, not 201: a host is registered only once a worker reached its engine, and this ssh:// one
    # comes without its keys. Operators get past the permission check to that refusal; tenants get 403.
    # tests/api/test_host_registration.py registers real engines.
    ("host-list", "POST"): (
        "/fleet/hosts/",
        {
            "name": "host-9",
            "engine_url": "ssh://berth@10.9.9.9",
            "address": "10.9.9.9",
            "memory_mb": 1024,
            "cpu_millis": 1000,
        },
        400,
    ),
    ("host-detail", "GET"): ("/fleet/hosts/{host}/", None, 200),
    ("host-detail", "PATCH"): ("/fleet/hosts/{host}/", {"state": "cordoned"}, 200),
    ("host-detail", "DELETE"): ("/fleet/hosts/{spare_host}/", None, 204),
    ("size-list", "POST"): ("/sizes/", {"name": "huge", "memory_mb": 4096, "cpu_millis": 2000}, 201),
    ("router-list", "GET"): ("/fleet/routers/", None, 200),
    ("router-list", "POST"): (
        "/fleet/routers/",
        {"name": "edge-9", "admin_url": "unix:///run/berth/edge-9.sock", "public_address": "203.0.113.9"},
        201,
    ),
    ("router-detail", "GET"): ("/fleet/routers/{router}/", None, 200),
    ("router-detail", "PATCH"): ("/fleet/routers/{router}/", {"state": "disabled"}, 200),
    ("router-detail", "DELETE"): ("/fleet/routers/{spare_router}/", None, 204),
}

# Routes that belong to the person, not to an organization: every authenticated user may call them.
PERSONAL_ROUTES = {
    ("me", "GET"),
    ("me", "PATCH"),
    ("token-list", "GET"),
    ("token-list", "POST"),
    ("token-detail", "GET"),
    ("token-detail", "DELETE"),
    ("organization-list", "GET"),
    ("organization-list", "POST"),
    ("invitation-accept", "POST"),
    ("size-list", "GET"),
}


def discovered_routes() -> set[tuple[str, str]]:
    """(route name, HTTP method) for every operation the API's URL map serves."""
    routes = set()
    for pattern in api_urls.urlpatterns:
        callback = pattern.callback
        if getattr(callback, "actions", None):
            methods = {method.upper() for method in callback.actions}
        else:
            # A DRF view's class is `cls`; a plain Django view's (the async live tail) is `view_class`.
            view = getattr(callback, "cls", None) or callback.view_class
            methods = {m.upper() for m in view.http_method_names if hasattr(view, m)}
        routes |= {(pattern.name, method) for method in methods - {"OPTIONS", "HEAD"}}
    return routes


def test_every_route_has_expectations():
    assert discovered_routes() == set(ORG_ROUTES) | PERSONAL_ROUTES | set(OPERATOR_ROUTES)


@pytest.fixture
def world(organization, members, owner_client):
    """Objects for every detail route: a member, an invitation, an app with a deployed release, a container,
    a registry credential, a domain; hosts and routers."""
    victim = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    invitation, _ = invitation_create(
        actor=members[Role.OWNER], organization=organization, email="pending@example.test", role=Role.VIEWER
    )
    app = AppFactory(organization=organization, name="web")
    event = AuditEvent.objects.filter(organization=organization).first()
    host, spare_host = HostFactory(), HostFactory()
    size = SizeFactory(is_default=True)
    release, deployment = release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1")
    App.objects.filter(pk=app.pk).update(current_release=release)
    container = ContainerFactory(host=host, app=app, release=release, size=size)
    run = Run.objects.create(app=app, release=release, command=["true"], size=size, timeout_s=60)
    Invoice.objects.create(organization=organization, period=date(2026, 10, 1))
    credential, _ = registry_credential_set(
        actor=members[Role.OWNER], organization=organization, registry="10.0.0.5:5000", username="ci", password="x"
    )
    domain = DomainFactory(app=app, hostname="shop.example.com")
    router, spare_router = RouterFactory(), RouterFactory()
    return {
        "org": organization.slug,
        "member": victim.pk,
        "invitation": invitation.pk,
        "app": app.name,
        "event": event.pk,
        "deployment": deployment.pk,
        "container": container.pk,
        "run": run.pk,
        "credential": credential.pk,
        "host": host.pk,
        "spare_host": spare_host.pk,
        "domain": domain.hostname,
        "router": router.pk,
        "spare_router": spare_router.pk,
    }


def call(client: APIClient, method: str, path: str, body):
    return client.generic(
        method, f"/api/v1{path}", data=None if body is None else json.dumps(body), content_type="application/json"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.values)
@pytest.mark.parametrize("route", sorted(ORG_ROUTES), ids="{0[0]} {0[1]}".format)
def test_role_may_or_may_not(route, role, world, members):
    allowed, path, body, *success = ORG_ROUTES[route]
    response = call(token_client(members[role]), route[1], path.format(**world), body)
    if role in allowed:
        assert response.status_code == (success[0] if success else SUCCESS[route[1]]), response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"] == "permission_denied"


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(ORG_ROUTES), ids="{0[0]} {0[1]}".format)
def test_foreign_tenant_gets_the_same_404_as_for_nothing(route, world, outsider):
    _, path, body, *_ = ORG_ROUTES[route]
    client = token_client(outsider)
    foreign = call(client, route[1], path.format(**world), body)
    missing = call(client, route[1], path.format(**{**world, "org": "no-such-org"}), body)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"error": "not_found", "message": "Not found.", "fields": {}}


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(ORG_ROUTES | OPERATOR_ROUTES | dict.fromkeys(PERSONAL_ROUTES)), ids=str)
def test_anonymous_gets_401(route, world):
    path = (
        ORG_ROUTES[route][1]
        if route in ORG_ROUTES
        else OPERATOR_ROUTES[route][0]
        if route in OPERATOR_ROUTES
        else {
            "me": "/me/",
            "token-list": "/tokens/",
            "token-detail": "/tokens/1/",
            "organization-list": "/orgs/",
            "invitation-accept": "/invitations/accept/",
            "size-list": "/sizes/",
        }[route[0]]
    )
    response = call(APIClient(), route[1], path.format(**world), {})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_foreign_objects_are_invisible_in_lists(world, outsider, owner_client):
    foreign = token_client(outsider)
    assert [org["slug"] for org in foreign.get("/api/v1/orgs/").json()["results"]] == ["globex"]
    mine = owner_client.get("/api/v1/orgs/").json()["results"]
    assert [(org["slug"], org["role"]) for org in mine] == [("acme", "owner")]


@pytest.mark.django_db
def test_someone_elses_token_is_a_404(members, outsider):
    owner = token_client(members[Role.OWNER])
    token_id = owner.get("/api/v1/tokens/").json()["results"][0]["id"]
    foreign = token_client(outsider)
    assert foreign.get(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert foreign.delete(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert owner.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(OPERATOR_ROUTES), ids="{0[0]} {0[1]}".format)
def test_operator_routes(route, world, members):
    path, body, success = OPERATOR_ROUTES[route]
    for role in Role.values:
        response = call(token_client(members[role]), route[1], path.format(**world), body)
        assert response.status_code == 403, (role, response.content)
    operator = token_client(UserFactory(is_staff=True))
    response = call(operator, route[1], path.format(**world), body)
    assert response.status_code == success, response.content
