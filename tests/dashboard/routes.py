"""The dashboard's routes as the URL map has them, and an organization with a row for each URL argument.

Tests that go over every route (access, accessibility, query counts) take them from here, so a route
added to `berth.dashboard.urls` is covered by all of them the day it is added.
"""

from datetime import date

import pytest
from django.urls import URLPattern, URLResolver, reverse

from berth.applications.models import App
from berth.billing.models import Invoice
from berth.dashboard import urls as dashboard_urls
from berth.deployments import models as deployments_models
from berth.deployments import services as deployments
from berth.routing.services import domain_add
from berth.tenancy.models import Membership
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from tests.factories import SizeFactory


def _patterns(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


ROUTES = list(_patterns(dashboard_urls.urlpatterns))
ORG_ROUTES = [(route, entry) for route, entry in ROUTES if "<str:org_slug>" in route]


def url_of(entry, kwargs) -> str:
    needed = entry.pattern.converters.keys()
    return reverse(f"dashboard:{entry.name}", kwargs={name: kwargs[name] for name in needed})


@pytest.fixture
def world(organization, members):
    """acme with an app that has two releases, config, a formation, a domain, a pending invitation and a
    finalized invoice; the values of every URL argument of the organization's routes."""
    owner = members[Role.OWNER]
    size = SizeFactory(name="small", is_default=True)
    app = App.objects.create(organization=organization, name="shop", description="The shop")
    deployments.release_create(actor=owner, app=app, image="berth-test/web:v1", process_types=None, description="")
    deployments.config_set(actor=owner, app=app, values={"GREETING": "hello"})
    domain = domain_add(actor=owner, app=app, hostname="www.example.com")
    invitation, _ = invitation_create(actor=owner, organization=organization, email="new@example.test", role="viewer")
    run = deployments_models.Run.objects.create(
        app=app, release=app.releases.get(version=2), command=["echo", "hi"], size=size, timeout_s=60
    )
    invoice = Invoice.objects.create(organization=organization, period=date(2026, 10, 1), state=Invoice.State.FINALIZED)
    return {
        "org_slug": organization.slug,
        "app_name": app.name,
        "version": 1,
        "membership_id": Membership.objects.get(user=members[Role.DEVELOPER]).pk,
        "invitation_id": invitation.pk,
        "period": invoice.period.strftime("%Y-%m"),
        "hostname": domain.hostname,
        "run_id": run.pk,
    }
