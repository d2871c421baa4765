"""The overview's canary section: what it says, who gets Promote and Abort, and their confirm pages, which
call the API's services (docs/deploys.md#canary-releases)."""

import pytest

from berth.deployments.models import Canary, Deployment
from berth.deployments.services import canary_create
from berth.tenancy.roles import Role

from .app_rows import app_running_v1
from .test_app_overview import OVERVIEW, text

pytestmark = pytest.mark.django_db
PROMOTE = f"{OVERVIEW}canary/promote/"
ABORT = f"{OVERVIEW}canary/abort/"


@pytest.fixture
def app(organization, members):
    app = app_running_v1(organization, members[Role.OWNER])
    app.formation.update(quantity=3)
    canary_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v2", weight=10)
    return app


def test_the_overview_shows_the_canary_and_its_controls_to_those_who_may_deploy(app, members, dashboard_client):
    page = text(dashboard_client(members[Role.DEVELOPER]).get(OVERVIEW))
    assert "Canary v2 at 10%" in page
    assert "Release v2 runs beside v1 and gets 10% of the requests: 0 of 1 canary replica running" in page
    assert "Promote v2" in page and "Abort the canary" in page
    viewer = text(dashboard_client(members[Role.VIEWER]).get(OVERVIEW))
    assert "Canary v2 at 10%" in viewer and "Promote v2" not in viewer and "Abort the canary" not in viewer


def test_no_canary_no_section(organization, members, dashboard_client):
    app_running_v1(organization, members[Role.OWNER])
    assert "Canary" not in text(dashboard_client(members[Role.OWNER]).get(OVERVIEW))
    assert dashboard_client(members[Role.OWNER]).get(PROMOTE).status_code == 302


def test_abort_is_confirmed_then_aborts(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    confirm = client.get(ABORT)
    assert confirm.status_code == 200 and "Abort the canary v2?" in text(confirm)
    assert Canary.objects.get().state == Canary.State.ACTIVE  # a GET changes nothing
    response = client.post(ABORT)
    assert response.status_code == 302 and response["Location"] == OVERVIEW
    assert Canary.objects.get().state == Canary.State.ABORTED
    assert Deployment.objects.filter(kind=Deployment.Kind.ABORT).exists()


def test_a_refused_promotion_says_why_on_the_confirm_page(app, members, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    response = client.post(PROMOTE)  # the canary's own deployment has not run
    assert response.status_code == 400 and "still being deployed" in text(response)
    Deployment.objects.filter(kind=Deployment.Kind.CANARY).update(state=Deployment.State.SUCCEEDED)
    assert "Promote v2?" in text(client.get(PROMOTE))
    assert client.post(PROMOTE).status_code == 302
    assert Canary.objects.get().state == Canary.State.PROMOTED
    assert Deployment.objects.filter(kind=Deployment.Kind.PROMOTE, release__version=2).exists()


def test_a_viewer_cannot_promote(app, members, dashboard_client):
    assert dashboard_client(members[Role.VIEWER]).post(PROMOTE).status_code == 403
    assert Canary.objects.get().state == Canary.State.ACTIVE


def test_the_live_update_carries_the_canary(app, members, dashboard_client):
    html = dashboard_client(members[Role.VIEWER]).get(f"{OVERVIEW}live/", HTTP_HX_REQUEST="true").content.decode()
    assert '<div id="canary" hx-swap-oob="true">' in html and "v2 at 10%" in html
    Canary.objects.update(state=Canary.State.ABORTED)  # gone: the live update empties the section
    html = dashboard_client(members[Role.VIEWER]).get(f"{OVERVIEW}live/", HTTP_HX_REQUEST="true").content.decode()
    assert '<div id="canary" hx-swap-oob="true">' in html and "v2 at 10%" not in html
