"""The console's browser tests drive a real Chromium against the live server."""

from tests.browser import browser, page  # noqa: F401  (fixtures, used by name)
