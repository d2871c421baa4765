"""Each dashboard page, and each htmx update of one, costs the same number of SQL queries whatever the
organization holds: a page of 1 app or of 40, an app with 1 container or 40, 2 deployments or 42.

The pages are every GET route of an organization from the URL map (tests/dashboard/routes.py), asked as
the owner, who may open them all. Each area's tests pin its own counts; this one proves none of them grows.
"""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from berth.applications.models import App, ConfigVar, Release
from berth.audit.models import AuditEvent
from berth.billing.models import Invoice, InvoiceLine
from berth.deployments.models import Deployment, DeploymentStep
from berth.fleet.models import Container, Size
from berth.routing.models import Domain
from berth.tenancy.models import Invitation
from berth.tenancy.roles import Role
from tests.factories import ContainerFactory, HostFactory, MembershipFactory, RouterFactory

from .routes import ORG_ROUTES, url_of

pytestmark = pytest.mark.django_db
MORE = 40


def queries_of_every_page(client, world) -> dict[str, int]:
    counts = {}
    for route, entry in ORG_ROUTES:
        url = url_of(entry, world)
        for variant, headers in (("page", {}), ("htmx", {"HTTP_HX_REQUEST": "true"})):
            client.get(url, **headers)  # the first answer may fill caches (content types, the session)
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url, **headers)
            if response.status_code == 200:
                counts[f"{variant} {route}"] = len(captured.captured_queries)
    return counts


def grow(organization, members, app) -> None:
    """MORE of everything a page lists: apps, releases, deployments with steps, containers, members,
    invitations, audit events, invoices with lines, config vars and domains, each by another person; routers."""
    owner, now = members[Role.OWNER], timezone.now()
    size = Size.objects.get(name="small")
    current = app.current_release or app.releases.first()
    for n in range(MORE):
        other = App.objects.create(organization=organization, name=f"more-{n}")
        Release.objects.create(app=other, version=1, image="berth-test/web:v1", process_types={}, config={})
    releases = Release.objects.bulk_create(
        Release(
            app=app, version=100 + n, image=f"berth-test/web:v{n}", process_types={}, config={"K": str(n)}, author=owner
        )
        for n in range(MORE)
    )
    deployments = Deployment.objects.bulk_create(
        Deployment(
            app=app,
            release=release,
            kind="release",
            state="succeeded",
            created_by=owner,
            created_at=now - timedelta(minutes=n),
        )
        for n, release in enumerate(releases)
    )
    DeploymentStep.objects.bulk_create(
        DeploymentStep(deployment=d, message=f"step {s}") for d in deployments for s in range(3)
    )
    hosts = [HostFactory(), HostFactory()]
    for n in range(MORE):
        ContainerFactory(
            app=app,
            release=current,
            host=hosts[n % 2],
            size=size,
            index=n,
            state=Container.State.RUNNING,
            health=Container.Health.HEALTHY,
            published_port=31000 + n,
            started_at=now,
        )
    for n in range(MORE):
        MembershipFactory(organization=organization, role=Role.DEVELOPER)
        Invitation.objects.create(
            organization=organization,
            email=f"invitee{n}@example.test",
            role=Role.VIEWER,
            token_digest=f"{n:064x}",
            invited_by=owner,
            expires_at=now + timedelta(days=7),
        )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            organization=organization,
            organization_slug=organization.slug,
            actor=owner,
            actor_email=owner.email,
            action="app.update",
            target_type="applications.app",
            target_id=str(app.pk),
            source="api",
        )
        for _ in range(MORE)
    )
    for month in range(1, 10):
        invoice = Invoice.objects.create(
            organization=organization, period=date(2025, month, 1), state=Invoice.State.FINALIZED
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                app_name=f"more-{n}",
                process_type="web",
                size_name="small",
                price_per_hour="0.010000",
                seconds=3600,
                amount="0.01",
            )
            for n in range(5)
        )
    ConfigVar.objects.bulk_create(ConfigVar(app=app, key=f"KEY_{n}", value=str(n)) for n in range(MORE))
    Domain.objects.bulk_create(
        Domain(app=app, hostname=f"www{n}.example.com", created_by=MembershipFactory(organization=organization).user)
        for n in range(MORE)
    )
    for n in range(3):
        RouterFactory(name=f"router-{n}")


def test_no_page_and_no_update_costs_more_queries_as_the_organization_grows(
    world, organization, members, dashboard_client
):
    client = dashboard_client(members[Role.OWNER])
    small = queries_of_every_page(client, world)
    grow(organization, members, App.objects.get(name=world["app_name"]))
    large = queries_of_every_page(client, world)
    assert len(small) >= 12, small  # every page answered, not a handful
    grown = {page: (small[page], large.get(page)) for page in small if small[page] != large.get(page)}
    assert not grown, f"queries (small, large) of the pages whose count changed: {grown}"
