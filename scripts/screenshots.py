"""Screenshots of the dashboard for the README, made again with one command against a running Berth.

    make run                      # in another terminal; note the demo sign-in it prints
    uv run python scripts/screenshots.py --password <demo password> [--url http://127.0.0.1:8000]

Signs in as the demo tenant through the sign-in form in Debian's Chromium (scripts/ensure-chromium.sh),
then saves the organization home and the app overview of demo/hello to docs/images/.
"""

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
PAGES = {"org-home.png": "/orgs/demo/", "app-overview.png": "/orgs/demo/apps/hello/"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--email", default="demo@berth.local")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(base_url=args.url, viewport={"width": 1280, "height": 800})
        page.goto("/signin/")
        page.get_by_label("Email").fill(args.email)
        page.get_by_label("Password").fill(args.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/signin/" not in url)
        for name, path in PAGES.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=OUT / name, full_page=True)
            print(f"wrote {OUT / name}")
        browser.close()


if __name__ == "__main__":
    main()
