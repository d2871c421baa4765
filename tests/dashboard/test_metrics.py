"""The app's Metrics page: the API's figures as charts and a table, for every role that may see the app."""

import json
import re

import pytest

from berth.applications.models import App
from berth.tenancy.roles import Role
from tests.metrics.helpers import readings

from .accessibility import assert_accessible

METRICS = "/orgs/acme/apps/shop/metrics/"


@pytest.fixture
def figures(world):
    app = App.objects.get(name="shop")
    readings(app, cpu_per_second_ns=150_000_000, requests=60, errors=6, docker_id="shop-web-1")
    return app


def chart_data(response) -> dict:
    html = response.content.decode()
    return json.loads(re.search(r'<script id="metrics-data" type="application/json">(.*?)</script>', html).group(1))


def test_the_page_holds_the_figures_the_api_gives(figures, members, dashboard_client, owner_client):
    api = owner_client.get("/api/v1/orgs/acme/apps/shop/metrics/").json()
    response = dashboard_client(members[Role.VIEWER]).get(METRICS)
    assert response.status_code == 200
    data = chart_data(response)
    [process] = data["processes"]
    [[time, cpu, memory]] = process["points"]
    [api_point] = api["processes"][0]["points"]
    assert cpu == api_point["cpu_millis"] == 150.0
    assert memory == 20.0
    assert process["cpu_limit"] == 250
    assert process["memory_limit_mb"] == 64.0
    [[_, per_second, ok, redirects, client_errors, server_errors, response_ms]] = data["requests"]
    assert per_second == api["requests"]["points"][0]["per_second"] == 1.0
    assert (ok, redirects, client_errors, server_errors) == (0.9, 0, 0, 0.1)
    assert response_ms == 8.0
    assert data["bin"] == 60
    assert data["start"] <= time < data["end"]


def test_an_unknown_period_is_a_400(figures, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(METRICS, {"period": "year"})
    assert response.status_code == 400
    assert b"period takes hour, day, week" in response.content


def test_an_app_without_figures_says_so(world, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(METRICS)
    assert b'id="metrics-empty"' in response.content
    assert b"metrics-data" not in response.content


# In Chromium


def test_the_charts_are_drawn_for_the_hour_and_the_day(figures, members, page_as):
    page = page_as(members[Role.VIEWER])
    page.goto("/orgs/acme/apps/shop/")
    page.get_by_role("link", name="Metrics").click()
    for chart in ("cpu", "memory", "requests", "latency"):
        canvas = page.locator(f"#{chart}-chart canvas")
        canvas.wait_for()
        assert canvas.bounding_box()["width"] > 200
    # uPlot's legend names every series: the replica, and the size's limit.
    assert "web.1" in page.locator("#cpu-chart .u-legend").inner_text()
    assert "limit 250" in page.locator("#cpu-chart .u-legend").inner_text()
    assert page.locator("#metrics-processes tbody tr").inner_text().split() == [
        "web.1", "150.0", "150.0", "250", "20.0", "64.0", "0"
    ]  # fmt: skip
    assert_accessible(page)

    page.get_by_role("link", name="Last day").click()
    page.wait_for_url("**/metrics/?period=day")
    page.locator("#cpu-chart canvas").wait_for()
    assert "Last day in figures" in page.locator("#summary-heading").inner_text()
    assert page.locator("#metrics-requests").inner_text().split()[:2] == ["Requests", "60"]
