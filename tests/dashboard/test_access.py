"""Every dashboard route under an organization says what the API says, for every role and for a stranger.

The routes come from the URL map, not a hand-written list, and each route's rule from the action its view
declares through `access.org_page`, checked against the one role table: a route added tomorrow is covered
the day it is added, and a route that forgets `org_page` fails here.
"""

import pytest
from django.urls import reverse

from berth.applications.models import App, ConfigVar, Formation, Release
from berth.deployments.models import Deployment, Run
from berth.routing.models import Domain
from berth.tenancy.models import ApiToken, Invitation, Membership, Organization
from berth.tenancy.roles import Role, role_allows

from .routes import ORG_ROUTES, url_of

pytestmark = pytest.mark.django_db


def test_every_route_of_an_organization_declares_the_action_it_needs():
    assert len(ORG_ROUTES) >= 20
    undeclared = [route for route, entry in ORG_ROUTES if not hasattr(entry.callback, "required_action")]
    assert not undeclared, f"routes not wrapped in access.org_page: {undeclared}"


def snapshot() -> dict:
    """Everything a forged request could change, as plain values."""
    return {
        "organizations": list(Organization.objects.order_by("pk").values_list("slug", "name")),
        "apps": list(
            App.objects.order_by("pk").values_list(
                "name", "description", "current_release_id", "https_only", "drain_timeout_s"
            )
        ),
        "domains": list(Domain.objects.order_by("pk").values_list("app_id", "hostname")),
        "releases": list(Release.objects.order_by("pk").values_list("app_id", "version", "image")),
        "deployments": list(Deployment.objects.order_by("pk").values_list("pk", "state", "release_id")),
        "formation": list(Formation.objects.order_by("pk").values_list("process_type", "quantity", "size_id")),
        "config": sorted((var.key, var.value) for var in ConfigVar.objects.all()),
        "memberships": list(Membership.objects.order_by("pk").values_list("user_id", "organization_id", "role")),
        "invitations": list(Invitation.objects.order_by("pk").values_list("pk", "email", "role", "accepted_at")),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        "runs": list(Run.objects.order_by("pk").values_list("pk", "state", "command")),
    }


@pytest.mark.parametrize(("route", "entry"), ORG_ROUTES, ids=[route for route, _ in ORG_ROUTES])
def test_a_member_of_another_organization_gets_404_for_every_method(route, entry, world, outsider, dashboard_client):
    client = dashboard_client(outsider)
    url = url_of(entry, world)
    before = snapshot()
    assert client.get(url).status_code == 404
    assert (
        client.post(url, {"confirm": "shop", "name": "shop", "role": "owner", "quantity-web": "0"}).status_code == 404
    )
    assert snapshot() == before


@pytest.mark.parametrize("role", Role.values)
def test_each_role_opens_exactly_the_pages_its_actions_allow(role, world, members, dashboard_client):
    client = dashboard_client(members[role])
    refused = []
    for route, entry in ORG_ROUTES:
        status = client.get(url_of(entry, world)).status_code
        allowed = role_allows(role, entry.callback.required_action)
        # A page answers 200 (or redirects); a POST-only action answers 405 to a GET from a role that may use it.
        if allowed != (status in (200, 302, 405)) or (not allowed and status != 403):
            refused.append((route, status, allowed))
    assert not refused, refused


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_forged_post_by_a_read_only_role_is_refused_and_changes_nothing(role, world, members, dashboard_client):
    """A viewer (and the billing role) may change nothing in an organization, whichever form it forges."""
    client = dashboard_client(members[role])
    before = snapshot()
    forged = {
        "confirm": "shop",
        "name": "shop",
        "image": "berth-test/web:v2",
        "role": "owner",
        "email": "x@example.test",
        "hostname": "forged.example.com",
        "https_only": "on",
        "drain_timeout_s": "600",
        "command": "echo forged",
    }
    refused = {}
    for route, entry in ORG_ROUTES:
        status = client.post(url_of(entry, world), forged).status_code
        # Pages it may open may answer a POST as they like (405, say), but change nothing; the rest are 403.
        if not role_allows(role, entry.callback.required_action):
            refused[route] = status
        assert snapshot() == before, route
    assert refused and set(refused.values()) == {403}, refused


@pytest.mark.parametrize(
    ("role", "sees_billing"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.BILLING, True), (Role.DEVELOPER, False), (Role.VIEWER, False)],
)
def test_usage_and_invoices_are_for_owners_admins_and_the_billing_role(
    role, sees_billing, world, members, dashboard_client
):
    client = dashboard_client(members[role])
    usage = client.get(reverse("dashboard:usage", args=["acme"]))
    invoice = client.get(reverse("dashboard:invoice", args=["acme", world["period"]]))
    home = client.get(reverse("dashboard:org-home", args=["acme"]))
    assert (usage.status_code, invoice.status_code) == ((200, 200) if sees_billing else (403, 403))
    assert (b">Usage<" in home.content) is sees_billing
    if not sees_billing:
        assert b"owner, admin or billing" in usage.content
