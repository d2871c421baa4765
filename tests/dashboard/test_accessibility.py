"""axe-core finds no serious or critical violation on any dashboard page, in a real Chromium.

The pages are every GET route of the URL map (tests/dashboard/routes.py) that the owner of an organization
with an app, releases, config, members, an invitation and an invoice can open, plus what a visitor sees
(sign-in, sign-up, password reset) and the 403 and 404 pages. Each area's tests check its pages in the
states they can be in (a refused form, a revealed value); this one makes sure no page is left out.
"""

import pytest
from django.test import override_settings

from berth.tenancy.roles import Role

from .accessibility import assert_accessible
from .routes import ROUTES, url_of

VISITOR_PAGES = ["/signin/", "/signup/", "/password-reset/"]


@override_settings(BERTH_SIGNUP="open")
def test_every_page_a_visitor_sees_is_accessible(page):
    for path in VISITOR_PAGES:
        assert page.goto(path).status == 200, path
        assert_accessible(page)


def test_every_page_of_an_organization_is_accessible(world, members, page_as, dashboard_client):
    owner = members[Role.OWNER]
    client, browser_page = dashboard_client(owner), page_as(owner)
    checked = []
    for route, entry in ROUTES:
        if entry.pattern.converters.keys() - world.keys():
            continue  # a route of a token in an email (password reset, invitation): its own tests open it
        url = url_of(entry, world)
        answer = client.get(url)
        if answer.status_code != 200 or not answer["Content-Type"].startswith("text/html"):
            continue  # an action that answers only POST, or a download
        assert browser_page.goto(url).status == 200, url
        assert_accessible(browser_page)
        checked.append(route)
    assert len(checked) >= 14, checked


def test_the_403_and_404_pages_are_accessible(world, members, page_as):
    viewer_page = page_as(members[Role.VIEWER])
    assert viewer_page.goto("/orgs/acme/audit/").status == 403
    assert_accessible(viewer_page)
    assert viewer_page.goto("/orgs/no-such-org/").status == 404
    assert_accessible(viewer_page)


pytestmark = pytest.mark.django_db(transaction=True)
