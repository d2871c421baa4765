"""An app's metrics through the API: its own figures only, another organization's app a 404, a period the
API does not know a 400 naming the field."""

import pytest

from berth.tenancy.roles import Role
from tests.api.test_bad_input import assert_error
from tests.conftest import token_client
from tests.factories import AppFactory, MembershipFactory

from .helpers import readings

pytestmark = pytest.mark.django_db

METRICS = "/api/v1/orgs/{org}/apps/{app}/metrics/"
MB = 1024 * 1024


@pytest.fixture
def apps(organization, outsider):
    """An app named "shop" in each of two organizations, with different figures."""
    ours = AppFactory(organization=organization, name="shop")
    theirs = AppFactory(organization=outsider.memberships.get().organization, name="shop")
    readings(ours, cpu_per_second_ns=100_000_000, requests=30, docker_id="ours")
    readings(theirs, cpu_per_second_ns=200_000_000, requests=900, docker_id="theirs")
    return ours, theirs


def test_an_app_shows_its_own_figures(apps, members):
    for role in Role.values:  # every role may look at an app (app.view)
        response = token_client(members[role]).get(METRICS.format(org="acme", app="shop"))
        assert response.status_code == 200, role
    body = response.json()
    assert body["period"] == "hour"
    assert body["bin_seconds"] == 60
    [process] = body["processes"]
    assert process["name"] == "web.1"
    assert process["cpu_limit_millis"] == 250
    assert process["memory_limit_bytes"] == 64 * MB
    [point] = process["points"]
    assert point["cpu_millis"] == 100.0
    assert point["memory_bytes"] == 20 * MB
    assert body["requests"]["requests"] == 30
    assert body["requests"]["status_2xx"] == 30
    [requests] = body["requests"]["points"]
    assert requests["per_second"] == 0.5
    assert requests["response_ms"] == 8.0


def test_the_other_organization_sees_its_own_and_ours_is_a_404(apps, outsider, owner_client):
    theirs = token_client(outsider).get(METRICS.format(org="globex", app="shop")).json()
    assert theirs["requests"]["requests"] == 900
    assert theirs["processes"][0]["points"][0]["cpu_millis"] == 200.0
    # Our organization's app, through their token: the same 404 as an app that does not exist.
    assert_error(token_client(outsider).get(METRICS.format(org="acme", app="shop")), 404, "not_found")
    assert_error(owner_client.get(METRICS.format(org="globex", app="shop")), 404, "not_found")
    assert_error(owner_client.get(METRICS.format(org="acme", app="nope")), 404, "not_found")


def test_a_day_and_a_week(apps, owner_client):
    day = owner_client.get(METRICS.format(org="acme", app="shop"), {"period": "day"}).json()
    assert day["bin_seconds"] == 300
    assert day["requests"]["requests"] == 30
    week = owner_client.get(METRICS.format(org="acme", app="shop"), {"period": "week"}).json()
    assert week["bin_seconds"] == 3600
    assert week["requests"]["requests"] == 30


@pytest.mark.parametrize("period", ["month", "", "HOUR", "hour ", "x" * 500])
def test_an_unknown_period_is_refused_naming_the_field(apps, owner_client, period):
    response = owner_client.get(METRICS.format(org="acme", app="shop"), {"period": period})
    if period == "":
        assert response.status_code == 200  # empty is the default, as if not given
        return
    assert_error(response, 400, "invalid", field="period")


def test_a_member_of_no_organization_gets_a_404(apps):
    stranger = MembershipFactory(role=Role.OWNER).user
    assert_error(token_client(stranger).get(METRICS.format(org="acme", app="shop")), 404, "not_found")
