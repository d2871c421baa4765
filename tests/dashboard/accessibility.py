"""axe-core, run in the page by Playwright: the dashboard has no serious or critical violation."""

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

_axe = Axe()
BLOCKING = {"serious", "critical"}


def assert_accessible(page: Page) -> None:
    """Fail with each serious or critical axe-core violation on the page as it is now."""
    results = _axe.run(page)
    violations = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
    details = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in violations]
    assert not violations, f"{page.url}:\n" + "\n".join(details)
