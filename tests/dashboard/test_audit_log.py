"""The audit log page: owners and admins read what happened, newest first, filtered as the API filters."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from berth.audit.models import AuditEvent
from berth.tenancy.models import Membership
from berth.tenancy.roles import Role
from tests.dashboard.accessibility import assert_accessible
from tests.factories import OrganizationFactory
from tests.timing import at

pytestmark = pytest.mark.django_db

AUDIT = reverse("dashboard:audit", args=["acme"])


def event(organization, target: str, *, when, actor="alice@example.test", action="app.create", **fields):
    """One recorded event of `organization`; `target` names it uniquely on the page."""
    defaults = {
        "source": AuditEvent.Source.API,
        "target_type": "applications.app",
        "target_id": "1",
        "ip_address": "203.0.113.7",
        "changes": {},
    }
    return AuditEvent.objects.create(
        organization=organization,
        organization_slug=organization.slug if organization else "",
        created_at=when,
        actor_email=actor,
        action=action,
        target_repr=target,
        **(defaults | fields),
    )


def shown(response) -> list[str]:
    """The targets of the rows on the page, top to bottom."""
    return re.findall(r"<td>(target-[\w-]+) <span", response.content.decode())


@pytest.fixture
def log(organization):
    """Five events over three days by two people, and one of another organization."""
    return [
        event(organization, "target-a", when=at(2026, 3, 1, 9, 0), actor="alice@example.test"),
        event(organization, "target-b", when=at(2026, 3, 1, 23, 59, 59), actor="bob@example.test", action="app.delete"),
        event(organization, "target-c", when=at(2026, 3, 2, 12, 0), actor="alice@example.test", action="config.update"),
        event(organization, "target-d", when=at(2026, 3, 3, 0, 0), actor="bob@example.test"),
        event(organization, "target-e", when=at(2026, 3, 3, 18, 0), actor="", source="system", ip_address=None),
        event(OrganizationFactory(slug="initech"), "target-x", when=at(2026, 3, 2, 10, 0)),
    ]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_read_the_log_newest_first_with_every_column(role, log, members, dashboard_client):
    log[2].changes = {"set": ["GREETING", "MODE"], "unset": []}
    log[2].source = AuditEvent.Source.DASHBOARD
    log[2].save()
    response = dashboard_client(members[role]).get(AUDIT)
    assert response.status_code == 200
    assert shown(response) == ["target-e", "target-d", "target-c", "target-b", "target-a"]
    page = response.content.decode()
    row = re.search(r"<tr>\s*<td class=\"when\">(?:(?!</tr>).)*target-c(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert '<time datetime="2026-03-02T12:00:00+00:00">2026-03-02 12:00:00</time>' in row
    assert "alice@example.test" in row and "<code>config.update</code>" in row and "applications.app" in row
    assert "Dashboard" in row and "203.0.113.7" in row
    assert "<code>set</code> [GREETING, MODE]" in row and "<code>unset</code> []" in row
    system = re.search(r"<tr>\s*<td class=\"when\">(?:(?!</tr>).)*target-e(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert "<td>system</td>" in system and "System" in system


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER, Role.BILLING])
def test_other_roles_get_a_403_page_naming_the_roles_needed(role, log, members, dashboard_client):
    response = dashboard_client(members[role]).get(AUDIT)
    assert response.status_code == 403
    assert "This needs the role owner or admin" in response.content.decode()
    assert "target-a" not in response.content.decode()


def test_an_outsider_gets_404(log, members, outsider, dashboard_client):
    client = dashboard_client(outsider)
    assert client.get(AUDIT).status_code == 404
    assert client.get(AUDIT, {"actor": "alice@example.test"}, headers={"HX-Request": "true"}).status_code == 404


@pytest.mark.parametrize(
    ("filters", "targets"),
    [
        ({"actor": "BOB@example.test"}, ["target-d", "target-b"]),
        ({"actor": "bob@example"}, []),  # the whole address, as in the API
        ({"action": "app.create"}, ["target-e", "target-d", "target-a"]),
        ({"date_from": "2026-03-02"}, ["target-e", "target-d", "target-c"]),
        ({"date_to": "2026-03-01"}, ["target-b", "target-a"]),  # the whole last day
        ({"date_from": "2026-03-02", "date_to": "2026-03-02"}, ["target-c"]),
        ({"actor": "alice@example.test", "action": "app.create", "date_to": "2026-03-02"}, ["target-a"]),
    ],
)
def test_filters_by_actor_action_and_days(filters, targets, log, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(AUDIT, filters)
    assert response.status_code == 200
    assert shown(response) == targets
    if not targets:
        assert "No events match these filters." in response.content.decode()


def test_the_action_filter_offers_the_organizations_actions(log, members, dashboard_client):
    page = dashboard_client(members[Role.OWNER]).get(AUDIT, {"action": "app.delete"}).content.decode()
    options = re.findall(r'<option value="([^"]*)"', page)
    assert options == ["", "app.create", "app.delete", "config.update"]
    assert '<option value="app.delete" selected>' in page


def test_a_bad_date_is_refused_next_to_the_field_and_kept(log, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(
        AUDIT, {"date_from": "2026-02-31", "actor": "bob@example.test"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid date." in page and 'value="2026-02-31"' in page and 'value="bob@example.test"' in page
    assert shown(response) == []


def test_an_htmx_filter_request_gets_the_log_alone(log, members, dashboard_client):
    response = dashboard_client(members[Role.OWNER]).get(
        AUDIT, {"actor": "bob@example.test"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert page.count('id="audit-log"') == 1
    assert "<html" not in page and "org-nav" not in page
    assert shown(response) == ["target-d", "target-b"]


def test_a_history_restore_gets_the_whole_page(log, members, dashboard_client):
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    page = dashboard_client(members[Role.OWNER]).get(AUDIT, headers=headers).content.decode()
    assert "<html" in page and 'id="audit-log"' in page


def test_fifty_events_a_page_and_the_pages_keep_the_filters(organization, members, dashboard_client):
    start = at(2026, 1, 1, 0, 0)
    for n in range(120):
        event(organization, f"target-{n:03}", when=start + timedelta(minutes=n))
    event(organization, "target-other", when=start, action="app.delete")
    client = dashboard_client(members[Role.OWNER])
    first = client.get(AUDIT, {"action": "app.create"})
    assert shown(first) == [f"target-{n:03}" for n in range(119, 69, -1)]
    page = first.content.decode()
    assert "120 events, page 1 of 3" in page
    assert 'href="?action=app.create&amp;page=2"' in page
    last = client.get(AUDIT, {"action": "app.create", "page": "3"})
    assert shown(last) == [f"target-{n:03}" for n in range(19, -1, -1)]
    assert 'href="?action=app.create&amp;page=2"' in last.content.decode()


def test_the_dashboards_own_changes_are_in_the_log_with_their_source(members, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    developer = Membership.objects.get(user=members[Role.DEVELOPER])
    client.post(
        reverse("dashboard:member-role", args=["acme", developer.pk]), {"role": "viewer"}, REMOTE_ADDR="198.51.100.4"
    )
    page = client.get(AUDIT, {"action": "membership.update"}).content.decode()
    assert "<code>membership.update</code>" in page and "Dashboard" in page and "198.51.100.4" in page
    assert "<code>role</code> [developer, viewer]" in page


@pytest.mark.parametrize("size", [5, 120])
def test_the_log_costs_the_same_queries_whatever_its_length(
    size, organization, members, dashboard_client, django_assert_num_queries
):
    start = at(2026, 1, 1, 0, 0)
    for n in range(size):
        event(organization, f"target-{n:03}", when=start + timedelta(minutes=n), action=f"app.action{n % 7}")
    client = dashboard_client(members[Role.OWNER])
    # session, user, membership and organization, the switcher, the actions, the count, the page
    with django_assert_num_queries(7):
        response = client.get(AUDIT)
    assert len(shown(response)) == min(size, 50)
    # an htmx filter request: no switcher
    with django_assert_num_queries(6):
        response = client.get(AUDIT, {"action": "app.action1"}, headers={"HX-Request": "true"})
    assert len(shown(response)) == min(len(range(1, size, 7)), 50)


@pytest.mark.django_db(transaction=True)
def test_browser_the_log_filtered_without_a_reload(log, members, page_as):
    page = page_as(members[Role.ADMIN])
    page.goto(AUDIT)
    assert page.locator("table.audit tbody tr").count() == 5
    assert_accessible(page)
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Actor (email)").fill("bob@example.test")
    page.get_by_label("Action").select_option("app.create")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"actor=bob%40example\.test"))
    page.get_by_text("1 event").wait_for()
    assert page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts() == ["target-d applications.app"]
    assert page.evaluate("window.notReloaded") is True
    assert page.get_by_label("Actor (email)").input_value() == "bob@example.test"
    assert_accessible(page)
