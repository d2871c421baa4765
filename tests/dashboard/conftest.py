"""The dashboard's fixtures: Django's test client signed in per role, and a real Chromium signed in.

Browser tests sign in by putting a real session cookie in the browser (made with `force_login`), so
only the sign-in tests themselves spend time on the sign-in form.
"""

from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, Page

from tests.browser import TIMEOUT_MS, browser, page  # noqa: F401  (fixtures, used by name)

from .routes import world  # noqa: F401  (a fixture, used by name)


@pytest.fixture
def dashboard_client() -> Callable[..., Client]:
    """`dashboard_client(user)`: a test client with a signed-in session for `user`."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def page_as(browser: Browser, live_server) -> Callable[..., Page]:  # noqa: F811
    """`page_as(user)`: a fresh browser page signed in as `user`, its relative URLs on the live server."""
    contexts = []

    def make(user) -> Page:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
