"""The overview follows a deployment live: its poll answers the state, containers and activity (fast
while a deployment is queued or running, slowly otherwise), in the same few queries whatever the app
holds; in the browser the steps and the containers' health change without a reload, down to a real
deploy and scale on the test bed's hosts by a real worker."""

import re
from datetime import timedelta

import pytest
from django.template.defaultfilters import date, time
from django.utils import timezone
from playwright.sync_api import Page, expect

from berth.applications.models import App
from berth.deployments.models import Deployment, DeploymentStep
from berth.fleet.models import Container
from berth.tenancy.roles import Role
from tests.factories import AppFactory
from tests.fleet import WEB

from .app_rows import add_containers, add_deployments, add_pending_release, app_running_v1

OVERVIEW = "/orgs/acme/apps/shop/"
LIVE = "/orgs/acme/apps/shop/live/"
HTMX = {"HTTP_HX_REQUEST": "true"}
# Long enough for a deployment on a loaded machine: the image starts, passes its health check, stays ready.
DEPLOY_TIMEOUT_MS = 90_000


@pytest.fixture
def app(organization, members):
    return app_running_v1(organization, members[Role.OWNER])


def poll_of(html: str) -> str:
    """The poll the answer asks for next: `hx-trigger` of the state section."""
    return re.search(r'<section id="app-state"[^>]*hx-trigger="([^"]+)"', html).group(1)


# --- the live answer -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_while_deploying_the_live_answer_is_the_live_parts_and_polls_every_two_seconds(app, members, dashboard_client):
    add_containers(app, 2)
    pending = add_pending_release(app, members[Role.DEVELOPER])
    response = dashboard_client(members[Role.VIEWER]).get(LIVE, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert "<html" not in html and 'id="formation"' not in html
    assert poll_of(html) == "every 2s"
    assert 'hx-get="/orgs/acme/apps/shop/live/"' in html
    assert '<section id="containers" aria-labelledby="containers-heading" hx-swap-oob="true">' in html
    assert '<section id="activity" aria-labelledby="activity-heading" hx-swap-oob="true">' in html
    assert f'id="deployment-{pending.pk}"' in html and "Queued: new release to v2." in html
    assert html.count("badge healthy") == 2


@pytest.mark.django_db
def test_when_nothing_deploys_the_poll_slows_down(app, members, dashboard_client):
    add_deployments(app, 2)
    html = dashboard_client(members[Role.VIEWER]).get(LIVE, **HTMX).content.decode()
    assert poll_of(html) == "every 30s"


@pytest.mark.django_db
def test_the_live_answer_follows_the_deployment(app, members, dashboard_client):
    """A step written and a container's health changed between two polls are in the second answer; once the
    deployment is over, the answer says so and polls slowly."""
    pending = add_pending_release(app, members[Role.DEVELOPER])
    client = dashboard_client(members[Role.VIEWER])
    first = client.get(LIVE, **HTMX).content.decode()
    assert "Starting web.0 of v2" not in first and "No container runs." in first

    Deployment.objects.filter(pk=pending.pk).update(state=Deployment.State.RUNNING)
    pending.steps.create(message="Starting web.0 of v2 on host-big (1 of 1).")
    [container] = add_containers(app, 1, exits_per_slot=0)
    Container.objects.filter(pk=container.pk).update(release=pending.release, health=Container.Health.STARTING)
    second = client.get(LIVE, **HTMX).content.decode()
    assert "Starting web.0 of v2 on host-big (1 of 1)." in second
    assert '<span class="badge starting">Starting</span>' in second
    assert poll_of(second) == "every 2s" and "New release: running" in second

    Container.objects.filter(pk=container.pk).update(health=Container.Health.HEALTHY)
    pending.steps.create(message=f"{container.name} is healthy (after 1 check).")
    Deployment.objects.filter(pk=pending.pk).update(state=Deployment.State.SUCCEEDED)
    App.objects.filter(pk=app.pk).update(current_release=pending.release)
    third = client.get(LIVE, **HTMX).content.decode()
    assert '<span class="badge healthy">Healthy</span>' in third and "is healthy (after 1 check)." in third
    assert poll_of(third) == "every 30s" and '<span class="badge running">Running</span>' in third


def held_of(html: str) -> str:
    """What the next poll says its page holds: the X-Berth-Held-Steps header the state section sets."""
    return re.search(r"""<section id="app-state"[^>]*hx-headers='\{"X-Berth-Held-Steps": "([0-9,]*)"\}'""", html).group(
        1
    )


@pytest.mark.django_db
def test_a_poll_leaves_out_the_folded_steps_its_page_holds(app, members, dashboard_client):
    """The page says which deployments' folded steps it holds; the poll's answer leaves those out (an empty
    `<details hx-preserve>`, which htmx fills with the page's own) and writes out every other step."""
    first, succeeded, failed = add_deployments(app, 3)  # two succeeded, the third failed
    pending = add_pending_release(app, members[Role.DEVELOPER])
    client = dashboard_client(members[Role.VIEWER])
    page = client.get(OVERVIEW).content.decode()
    assert held_of(page) == f"{succeeded.pk},{first.pk}"  # the folded steps: those of deployments that succeeded
    assert f"Step 1 of deployment {succeeded.pk}." in page

    polled = client.get(LIVE, **HTMX, HTTP_X_BERTH_HELD_STEPS=str(succeeded.pk))
    html = polled.content.decode()
    assert f'<details id="steps-{succeeded.pk}" hx-preserve></details>' in html
    assert f"deployment {succeeded.pk}." not in html
    assert f"Step 1 of deployment {first.pk}." in html and f"Step 2 of deployment {failed.pk}." in html
    assert "Queued: new release to v2." in html
    assert held_of(html) == f"{succeeded.pk},{first.pk}" and "X-Berth-Held-Steps" in polled["Vary"]
    # Steps a deployment still writes are written out, whatever the poll says; so is the whole page.
    running = client.get(LIVE, **HTMX, HTTP_X_BERTH_HELD_STEPS=f"{pending.pk},{failed.pk},x,-1").content.decode()
    assert "Queued: new release to v2." in running and f"Step 2 of deployment {failed.pk}." in running
    whole = client.get(LIVE, HTTP_X_BERTH_HELD_STEPS=str(succeeded.pk)).content.decode()
    assert f"Step 1 of deployment {succeeded.pk}." in whole


@pytest.mark.django_db
def test_steps_show_their_time_and_message_as_written(app, members, dashboard_client):
    """A step's time (to the second, and as ISO 8601 in `datetime`, microseconds only when it has some) and
    its message, escaped."""
    [deployment] = add_deployments(app, 1, steps=0)
    on_the_second = timezone.now().replace(microsecond=0)
    DeploymentStep.objects.create(deployment=deployment, at=on_the_second, message="Started <b>web.0</b> & 'more'")
    later = on_the_second + timedelta(seconds=1, microseconds=2500)
    DeploymentStep.objects.create(deployment=deployment, at=later, message="Done.")
    html = dashboard_client(members[Role.VIEWER]).get(LIVE, **HTMX).content.decode()
    first = f'<li><time datetime="{date(on_the_second, "c")}">{time(on_the_second, "H:i:s")}</time> '
    assert first + "Started &lt;b&gt;web.0&lt;/b&gt; &amp; &#x27;more&#x27;</li>" in html
    assert f'<li><time datetime="{date(later, "c")}">{time(later, "H:i:s")}</time> Done.</li>' in html
    assert date(later, "c").endswith(".002500+00:00") and "+00:00" in date(on_the_second, "c")


@pytest.mark.django_db
def test_the_live_address_without_htmx_is_the_whole_overview(app, members, dashboard_client):
    client = dashboard_client(members[Role.VIEWER])
    for headers in ({}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_BOOSTED": "true"}):
        html = client.get(LIVE, **headers).content.decode()
        assert html.startswith("<!doctype html>") and 'id="formation"' in html and 'id="app-state"' in html
        assert "hx-swap-oob" not in html


@pytest.mark.django_db
def test_the_live_address_of_another_organization_is_not_found(app, outsider, dashboard_client):
    assert dashboard_client(outsider).get(LIVE, **HTMX).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("containers", "deployments"), [(2, 3), (40, 60)])
def test_a_live_update_costs_the_same_queries_whatever_the_app_holds(
    containers, deployments, app, members, dashboard_client, django_assert_num_queries
):
    add_containers(app, containers)
    add_deployments(app, deployments, steps=4)
    add_pending_release(app, members[Role.OWNER])
    client = dashboard_client(members[Role.VIEWER])
    # session, user, membership, app, app_state, the two releases with when they went live, deployments and
    # their steps, the live containers, the crash history
    with django_assert_num_queries(10):
        response = client.get(LIVE, **HTMX)
    assert response.content.decode().count("badge healthy") == containers


# --- in the browser ------------------------------------------------------------------------------------------


def follow_navigations(page: Page) -> list[str]:
    """Every load of a new document in the page from now on (a reload, a non-boosted link)."""
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))
    return loads


@pytest.mark.django_db(transaction=True)
def test_steps_and_health_change_on_the_page_without_a_reload(app, members, page_as):
    [earlier] = add_deployments(app, 1)
    pending = add_pending_release(app, members[Role.DEVELOPER])
    page = page_as(members[Role.VIEWER])
    page.goto(OVERVIEW)
    expect(page.locator("#app-state")).to_have_attribute("data-poll-seconds", "2")
    page.evaluate("window.berthMarker = 'the page that was opened'")
    loads = follow_navigations(page)
    page.locator(f"#steps-{earlier.pk} summary").click()  # unfold a finished deployment's steps

    pending.steps.create(message="Starting web.0 of v2 on host-big (1 of 1).")
    [container] = add_containers(app, 1, exits_per_slot=0)
    Container.objects.filter(pk=container.pk).update(release=pending.release, health=Container.Health.STARTING)
    expect(page.locator(f"#deployment-{pending.pk}")).to_contain_text("Starting web.0 of v2 on host-big")
    expect(page.locator("#containers")).to_contain_text("Starting")

    Container.objects.filter(pk=container.pk).update(health=Container.Health.HEALTHY)
    DeploymentStep.objects.create(deployment=pending, message=f"{container.name} is healthy (after 1 check).")
    Deployment.objects.filter(pk=pending.pk).update(state=Deployment.State.SUCCEEDED)
    App.objects.filter(pk=app.pk).update(current_release=pending.release)
    expect(page.locator("#containers .badge.healthy")).to_have_text("Healthy")
    expect(page.locator(f"#deployment-{pending.pk} .badge")).to_have_text("Succeeded")
    expect(page.locator("#app-state")).to_have_attribute("data-poll-seconds", "30")
    expect(page.locator("#app-state dd").first).to_have_text("v2")

    assert page.evaluate("window.berthMarker") == "the page that was opened"
    assert loads == []
    # Updates came in, and the steps unfolded meanwhile are still unfolded.
    expect(page.locator(f"#steps-{earlier.pk}")).to_have_attribute("open", "")
    expect(page.locator(f"#steps-{earlier.pk}")).to_contain_text(f"Step 2 of deployment {earlier.pk}.")


@pytest.mark.django_db(transaction=True)
def test_a_deploy_and_a_scale_on_the_test_bed_are_followed_live(organization, members, fleet, workers, page_as):
    """Proof (e): a real deploy of berth-test/web:v1 by a real worker on the test bed's hosts; the overview
    shows its steps and the container turning healthy with no reload, then 3 healthy after a scale."""
    AppFactory(organization=organization, name="shop")
    page = page_as(members[Role.DEVELOPER])
    page.goto(OVERVIEW)
    expect(page.get_by_text("This app runs nothing yet.")).to_be_visible()

    page.get_by_role("link", name="Deploy", exact=True).click()
    page.get_by_label("Image").fill("berth-test/web:v1")
    web, health = WEB["web"], WEB["web"]["health_check"]
    assert page.get_by_label("Name").input_value() == "web"
    page.get_by_label("Port").fill(str(web["port"]))
    page.get_by_label("Health check", exact=True).select_option(health["type"])
    page.get_by_label("Health check path").fill(health["path"])
    page.get_by_text("Health check timing, ready time, filesystem").click()
    page.get_by_label("Check interval (s)").fill(str(health["interval_s"]))
    page.get_by_label("Failures before unhealthy").fill(str(health["retries"]))
    page.get_by_label("Start period (s)").fill(str(health["start_period_s"]))
    page.get_by_role("button", name="Deploy").click()

    # Back on the overview, the deployment is queued and no worker runs yet: everything after this
    # moment reaches the page through its poll.
    expect(page.get_by_text("Release v1 (berth-test/web:v1) is deploying.")).to_be_visible()
    expect(page.locator("#activity")).to_contain_text("Queued: new release to v1.")
    expect(page.locator("#containers")).to_contain_text("No container runs.")
    page.evaluate("window.berthMarker = 'set before the worker started'")
    loads = follow_navigations(page)
    workers()

    expect(page.locator("#activity")).to_contain_text("Starting web.0 of v1", timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#containers .badge.healthy")).to_have_count(1, timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#activity .badge").first).to_have_text("Succeeded", timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#activity")).to_contain_text("is healthy")
    expect(page.locator("#app-state")).to_contain_text("berth-test/web:v1")
    assert page.evaluate("window.berthMarker") == "set before the worker started"
    assert loads == []
    [container] = Container.objects.filter(state__in=Container.LIVE)
    assert container.health == Container.Health.HEALTHY
    expect(page.locator("#containers")).to_contain_text(f"{container.host.address}:{container.published_port}")

    page.get_by_label("Quantity of web").fill("3")
    page.get_by_role("button", name="Scale").click()
    expect(page.get_by_text("Scaling web to 3.")).to_be_visible()
    expect(page.locator("#containers .badge.healthy")).to_have_count(3, timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#app-state")).to_contain_text("web: 3 of 3 running", timeout=DEPLOY_TIMEOUT_MS)
    # The scale's form was posted by htmx (boosted): still the same page, never reloaded.
    assert page.evaluate("window.berthMarker") == "set before the worker started"
    assert loads == []
    live = Container.objects.filter(state__in=Container.LIVE)
    assert [c.health for c in live] == [Container.Health.HEALTHY] * 3


@pytest.mark.django_db(transaction=True)
def test_a_failed_poll_leaves_the_page_as_it_was_and_polling_goes_on(app, members, page_as):
    """The app is deleted while its overview is open: each poll is a 404, which changes nothing on the page."""
    add_pending_release(app, members[Role.DEVELOPER])
    page = page_as(members[Role.VIEWER])
    page.goto(OVERVIEW)
    App.objects.filter(pk=app.pk).delete()
    for _ in range(2):
        with page.expect_response(lambda answer: answer.url.endswith(LIVE)) as polled:
            pass
        assert polled.value.status == 404
    expect(page.locator("#app-state")).to_contain_text("Deploying v2")
    expect(page.locator("#containers")).to_be_visible()
