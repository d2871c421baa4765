"""The app overview: what runs and where it is going, the formation and its controls, the containers and
the deployments; who sees which control, and what a forged scale changes (nothing)."""

import re

import pytest
from playwright.sync_api import expect

from berth.applications.models import Formation
from berth.audit.models import AuditEvent
from berth.deployments.models import Deployment
from berth.deployments.selectors import ACTIVITY_PAGE
from berth.tenancy.roles import Role
from tests.dashboard.accessibility import assert_accessible

from .app_rows import FAILURE, add_containers, add_deployments, add_pending_release, app_running_v1

OVERVIEW = "/orgs/acme/apps/shop/"
SCALE = "/orgs/acme/apps/shop/formation/"


@pytest.fixture
def app(organization, members):
    return app_running_v1(organization, members[Role.OWNER])


def formation():
    return list(Formation.objects.order_by("process_type").values_list("process_type", "quantity", "size__name"))


def nothing_changed_since(before_formation, deployments: int) -> bool:
    return formation() == before_formation and Deployment.objects.count() == deployments


def text(response) -> str:
    """The page's text as a person reads it: inline tags taken out, other tags and runs of whitespace one space."""
    html = re.sub(r"</?(?:time|span|small|strong|a|code)\b[^>]*>", "", response.content.decode())
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- what the page shows ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_overview_shows_the_release_containers_and_activity(app, members, dashboard_client):
    add_containers(app, 2)
    failed, succeeded = add_deployments(app, 3)[2], add_deployments(app, 1)[0]
    response = dashboard_client(members[Role.VIEWER]).get(OVERVIEW)
    assert response.status_code == 200
    page = text(response)
    owner = members[Role.OWNER].email
    assert "Version v1 · First light" in page
    assert "Image berth-test/web:v1" in page
    assert f"Digest sha256:{'ab' * 32}" in page and f"Author {owner}" in page
    assert "Created just now" in page and "Running" in page
    assert "web: 2 of 1 running · small (v1: 2)" in page
    # Containers: host, address and port, health, uptime, restarts (the slot's two earlier exits).
    assert "web.0 v1 host-" in page and "10.99.0." in page and ":32768" in page
    assert page.count("Healthy") == 2 and "10 minutes" in page
    assert page.count("2 (last: exit 3, 19 minutes ago)") == 2
    # Activity: newest first, each step, and the reason of a failure.
    html = response.content.decode()
    assert html.index(f'id="deployment-{succeeded.pk}"') < html.index(f'id="deployment-{failed.pk}"')
    assert f"Failed: {FAILURE}" in page
    assert f"Step 2 of deployment {failed.pk}." in page and f"Step 0 of deployment {succeeded.pk}." in page
    assert failed.created_by.email in page


@pytest.mark.django_db
def test_a_deploying_app_shows_its_target_release_and_polls_fast(app, members, dashboard_client):
    add_pending_release(app, members[Role.DEVELOPER])
    response = dashboard_client(members[Role.DEVELOPER]).get(OVERVIEW)
    page = text(response)
    assert "New release: queued" in page
    assert f"Deploying v2 berth-test/web:v2 by {members[Role.DEVELOPER].email}; v1 serves until it is ready." in page
    assert 'hx-trigger="every 2s"' in response.content.decode()


@pytest.mark.django_db
def test_an_app_with_nothing_deployed_says_so(organization, members, dashboard_client):
    from tests.factories import AppFactory

    AppFactory(organization=organization, name="shop")
    developer = text(dashboard_client(members[Role.DEVELOPER]).get(OVERVIEW))
    viewer = text(dashboard_client(members[Role.VIEWER]).get(OVERVIEW))
    assert "This app runs nothing yet. Deploy an image to start it." in developer
    assert "No container runs." in developer and "No deployment yet." in developer
    assert "This app runs nothing yet." in viewer and "Deploy an image" not in viewer


@pytest.mark.django_db
def test_activity_shows_the_newest_deployments_and_links_to_older_ones(app, members, dashboard_client):
    made = add_deployments(app, ACTIVITY_PAGE + 3)
    client = dashboard_client(members[Role.VIEWER])
    first = client.get(OVERVIEW).content.decode()
    shown = [int(i) for i in re.findall(r'id="deployment-(\d+)"', first)]
    assert shown == [d.pk for d in reversed(made)][:ACTIVITY_PAGE]
    older = re.search(r'href="([^"]*\?before=\d+)">Older deployments', first).group(1)
    second = client.get(older).content.decode()
    assert [int(i) for i in re.findall(r'id="deployment-(\d+)"', second)] == [d.pk for d in reversed(made[:3])]
    assert "Older deployments" not in second and "Newest deployments" in second
    # The poll of the older page keeps asking for that page.
    assert f'hx-get="/orgs/acme/apps/shop/live/?before={made[3].pk}"' in second


# --- who sees which control ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "deploys", "sees_config"),
    [
        (Role.OWNER, True, True),
        (Role.ADMIN, True, True),
        (Role.DEVELOPER, True, True),
        (Role.VIEWER, False, False),
        (Role.BILLING, False, False),
    ],
)
def test_tabs_and_controls_follow_the_role(role, deploys, sees_config, app, members, dashboard_client):
    html = dashboard_client(members[role]).get(OVERVIEW).content.decode()
    assert 'href="/orgs/acme/apps/shop/releases/"' in html
    assert ('href="/orgs/acme/apps/shop/deploy/"' in html) is deploys
    assert ('href="/orgs/acme/apps/shop/config/"' in html) is sees_config
    assert (f'action="{SCALE}"' in html) is deploys
    assert ('name="quantity-web"' in html) is deploys
    main = html.split('<main id="main">')[1]
    assert (">Scale</button>" in main) is deploys
    assert ("<button" in main) is deploys  # a viewer's overview has no control at all


@pytest.mark.django_db
def test_another_organizations_app_is_not_found(app, outsider, dashboard_client):
    client = dashboard_client(outsider)
    before = formation()
    for url in (OVERVIEW, f"{OVERVIEW}live/", f"{OVERVIEW}deploy/", SCALE):
        assert client.get(url).status_code == 404
    assert client.post(SCALE, {"quantity-web": "0", "confirm": "yes"}).status_code == 404
    assert nothing_changed_since(before, 0)
    assert dashboard_client(app.organization.memberships.first().user).get("/orgs/acme/apps/nope/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_forged_scale_by_a_read_only_role_is_403_and_changes_nothing(role, app, members, dashboard_client):
    before = formation()
    response = dashboard_client(members[role]).post(
        SCALE, {"quantity-web": "0", "size-web": "medium", "confirm": "yes"}
    )
    assert response.status_code == 403
    assert "owner, admin or developer" in response.content.decode()
    assert nothing_changed_since(before, 0)
    assert not AuditEvent.objects.filter(action="formation.update").exists()


# --- scaling ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_scaling_queues_a_deployment_and_says_so(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    response = client.post(SCALE, {"quantity-web": "3", "size-web": "medium"}, follow=True)
    assert response.redirect_chain == [(OVERVIEW, 302)]
    assert formation() == [("web", 3, "medium")]
    deployment = Deployment.objects.get()
    assert (deployment.kind, deployment.state, deployment.release.version) == ("scale", "queued", 1)
    assert deployment.formation == {"web": {"quantity": 3, "size": "medium"}}
    assert "Scaling web to 3 at size medium." in text(response)
    event = AuditEvent.objects.get(action="formation.update")
    assert event.source == "dashboard" and event.changes == {"web": {"quantity": 3, "size": "medium"}}


@pytest.mark.django_db
def test_only_what_changed_is_sent(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    client.post(SCALE, {"quantity-web": "2", "size-web": "small"})
    assert AuditEvent.objects.get(action="formation.update").changes == {"web": {"quantity": 2}}
    response = client.post(SCALE, {"quantity-web": "2", "size-web": "small"}, follow=True)
    assert "nothing changed" in text(response)
    assert Deployment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("posted", "field", "message"),
    [
        ({"quantity-web": "500"}, "quantity-web", "Ensure this value is less than or equal to 100."),
        ({"quantity-web": "-1"}, "quantity-web", "Ensure this value is greater than or equal to 0."),
        ({"quantity-web": "many"}, "quantity-web", "A valid integer is required."),
        ({"size-web": "gigantic"}, "size-web", "There is no size &#x27;gigantic&#x27;."),
    ],
)
def test_a_refused_scale_keeps_the_input_and_shows_the_error_by_the_field(
    posted, field, message, app, members, dashboard_client
):
    before = formation()
    response = dashboard_client(members[Role.DEVELOPER]).post(
        SCALE, {"quantity-web": "1", "size-web": "small", **posted}
    )
    assert response.status_code == 400
    html = response.content.decode()
    typed = next(iter(posted.values()))
    cell = html[html.index(f'for="id_{field}"') : html.index("</td>", html.index(f'for="id_{field}"'))]
    assert f'<p class="error" id="id_{field}_error">{message}</p>' in cell
    assert 'aria-invalid="true"' in cell
    if field.startswith("quantity"):
        assert f'value="{typed}"' in cell
    assert nothing_changed_since(before, 0)


@pytest.mark.django_db
def test_a_size_bigger_than_any_host_is_refused_by_the_service(app, members, dashboard_client):
    from tests.factories import HostFactory, SizeFactory

    HostFactory(memory_mb=512)
    SizeFactory(name="huge", memory_mb=4096)
    response = dashboard_client(members[Role.DEVELOPER]).post(SCALE, {"quantity-web": "1", "size-web": "huge"})
    assert response.status_code == 400
    assert "Size huge (4096 MB) is bigger than any host." in text(response)
    assert formation() == [("web", 1, "small")]


@pytest.mark.django_db
def test_scaling_to_zero_asks_to_confirm_first(app, members, dashboard_client):
    client = dashboard_client(members[Role.DEVELOPER])
    asked = client.post(SCALE, {"quantity-web": "0", "size-web": "small"})
    assert asked.status_code == 200
    page = text(asked)
    assert "Stop every web container?" in page and "the app stops answering requests" in page
    assert 'name="confirm" value="yes"' in asked.content.decode()
    assert nothing_changed_since([("web", 1, "small")], 0)

    confirmed = client.post(SCALE, {"quantity-web": "0", "size-web": "small", "confirm": "yes"}, follow=True)
    assert confirmed.redirect_chain == [(OVERVIEW, 302)]
    assert formation() == [("web", 0, "small")]
    assert "scaled to zero" in text(confirmed)


@pytest.mark.django_db
def test_a_get_of_the_scale_address_goes_to_the_overview(app, members, dashboard_client):
    response = dashboard_client(members[Role.DEVELOPER]).get(SCALE)
    assert (response.status_code, response["Location"]) == (302, OVERVIEW)


@pytest.mark.django_db
def test_a_scale_while_a_release_deploys_offers_the_target_release_process_types(app, members, dashboard_client):
    add_pending_release(app, members[Role.DEVELOPER])
    client = dashboard_client(members[Role.DEVELOPER])
    client.post(SCALE, {"quantity-web": "2", "size-web": "small"})
    scale = Deployment.objects.get(kind=Deployment.Kind.SCALE)
    assert scale.release.version == 2  # the target release, as the API's PATCH does (docs/deploys.md)


# --- queries --------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("containers", "deployments"), [(2, 3), (40, 60)])
def test_the_overview_costs_the_same_queries_whatever_it_shows(
    containers, deployments, app, members, dashboard_client, django_assert_num_queries
):
    add_containers(app, containers)
    add_deployments(app, deployments, steps=4)
    add_pending_release(app, members[Role.OWNER])
    client = dashboard_client(members[Role.DEVELOPER])
    # session, user, membership, app, app_state, the two releases with when they went live, deployments and
    # their steps, the live containers, the crash history, sizes, the app's addresses, the organization switcher
    with django_assert_num_queries(13):
        response = client.get(OVERVIEW)
    assert response.status_code == 200
    assert text(response).count("Healthy") == containers
    assert len(re.findall(r'id="deployment-\d+"', response.content.decode())) == min(deployments + 1, ACTIVITY_PAGE)


# --- in the browser ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_overview_is_accessible_with_containers_deployments_and_a_refusal(app, members, page_as):
    add_containers(app, 3)
    add_deployments(app, 4)
    add_pending_release(app, members[Role.OWNER])
    page = page_as(members[Role.DEVELOPER])
    page.goto(OVERVIEW)
    expect(page.get_by_role("heading", name="Containers (3)")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Quantity of web").fill("500")
    page.evaluate("document.querySelector('#id_quantity-web').removeAttribute('max')")  # let the server refuse it
    page.get_by_role("button", name="Scale").click()
    expect(page.locator("#id_quantity-web_error")).to_have_text("Ensure this value is less than or equal to 100.")
    assert_accessible(page)


@pytest.mark.django_db(transaction=True)
def test_the_formation_is_scaled_with_the_keyboard_alone(app, members, page_as):
    page = page_as(members[Role.DEVELOPER])
    page.goto(OVERVIEW)
    for _ in range(40):  # from the top of the page, as someone without a mouse would get there
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "quantity-web":
            break
    else:
        pytest.fail("Tab never reached the quantity of web")
    page.keyboard.press("ArrowUp")  # 1 -> 2
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "size-web"
    page.keyboard.press("ArrowDown")  # small -> medium
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Scale"
    page.keyboard.press("Enter")
    expect(page.get_by_text("Scaling web to 2 at size medium.")).to_be_visible()
    assert formation() == [("web", 2, "medium")]

    # To zero: the confirm step, by keyboard too.
    page.get_by_label("Quantity of web").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Stop every web container?")).to_be_visible()
    assert formation() == [("web", 2, "medium")]
    page.get_by_role("button", name="Scale web to 0").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Scaling web to 0.")).to_be_visible()
    assert formation() == [("web", 0, "medium")]


@pytest.mark.django_db
def test_after_a_first_release_failed_the_formation_is_still_set_for_the_next_try(
    organization, members, dashboard_client
):
    """Nothing runs or deploys: a change builds on the newest release (`base_release`), as in the API."""
    app = app_running_v1(organization, members[Role.OWNER])
    Deployment.objects.create(
        app=app, release=app.current_release, kind=Deployment.Kind.RELEASE, state=Deployment.State.FAILED
    )
    app.current_release = None
    app.save()
    client = dashboard_client(members[Role.DEVELOPER])
    assert 'name="quantity-web" value="1"' in client.get(OVERVIEW).content.decode()
    response = client.post(SCALE, {"quantity-web": "2", "size-web": "small"}, follow=True)
    assert "Formation saved (web to 2); the first release will run with it." in text(response)
    assert formation() == [("web", 2, "small")] and Deployment.objects.count() == 1
    assert 'value="berth-test/web:v1"' in client.get(f"{OVERVIEW}deploy/").content.decode()
