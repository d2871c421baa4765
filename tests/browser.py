"""A real Chromium for browser tests: Debian's build driven by Playwright (docs/architecture.md#the-test-bed).

`playwright install` cannot download here, so tests launch /usr/bin/chromium. Use the fixtures by
importing them into a package's conftest.py: `from tests.browser import browser, page`.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Long enough for a page of the console on a loaded CI machine, short enough to fail fast.
TIMEOUT_MS = 10_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed (and the environment restored) when the block ends.

    Playwright's sync API keeps an asyncio event loop running in this thread for as long as it is
    started, and Django refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation).
    The test's ORM calls are plain blocking calls made between browser steps, never from inside the
    loop, so allowing them is safe; the live server answers the browser from its own thread.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: launching it costs about a second."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    """A fresh page (own cookies and storage) whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
