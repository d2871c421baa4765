"""Usage and billing in the dashboard: the numbers the API gives, laid out for people, for owners, admins
and the billing role only (issue 11, item 9).

Every number on the page and in the CSV is compared with what the API answers for the same organization
and month in the same test, so the dashboard can never compute money a second way.
"""

import csv
import gzip
import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from berth.applications.models import Formation, Release
from berth.billing.invoicing import invoices_run
from berth.billing.metering import usage_sync
from berth.billing.models import Invoice, InvoiceLine, SizePrice, UsageRecord
from berth.billing.services import quota_set
from berth.fleet.models import Container
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.dashboard.accessibility import assert_accessible
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import at

NOW = at(2026, 11, 4, 6)
API = "/api/v1/orgs/acme"
USAGE = reverse("dashboard:usage", args=["acme"])
CSV_URL = reverse("dashboard:usage-csv", args=["acme"])


def invoice_url(period: str) -> str:
    return reverse("dashboard:invoice", args=["acme", period])


class _Tables(HTMLParser):
    """The cells of each table with an id, as text: {id: [[cell, …], …]} (head, body and foot rows)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id"):
            self.current = attributes["id"]
            self.tables[self.current] = []
        elif self.current and tag == "tr":
            self.tables[self.current].append([])
        elif self.current and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None
        elif self.current and tag in ("td", "th") and self.cell is not None:
            self.tables[self.current][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(response) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


def hours(seconds: str) -> str:
    """How the page shows an API's seconds: hours to the hundredth."""
    return str((Decimal(seconds) / 3600).quantize(Decimal("0.01")))


@pytest.fixture
def frozen(monkeypatch):
    """Now is 06:00 UTC on 4 November 2026 for the pages, the API and the ledger alike."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def world(organization, members, frozen):
    """acme's containers in October and November 2026 at 0.36 an hour (a whole cent every 100 s), metered as
    the worker meters them; October closed and invoiced, November's draft live."""
    size = SizeFactory(name="small", memory_mb=256)
    SizePrice.objects.create(size=size, price_per_hour=Decimal("0.36"), effective_from=at(2026, 1, 1))
    host = HostFactory()
    apps = {}
    for name, process_type, start, end in [
        ("shop", "web", at(2026, 10, 15, 8), at(2026, 10, 15, 13)),  # 5 h in October
        ("shop", "web", at(2026, 11, 2, 22), at(2026, 11, 3, 2)),  # 2 h on the 2nd, 2 h on the 3rd
        ("shop", "worker", at(2026, 11, 3, 10), at(2026, 11, 3, 11)),
        ("blog", "web", at(2026, 11, 4), None),  # still running: 6 h up to now
    ]:
        if name not in apps:
            apps[name] = AppFactory(organization=organization, name=name)
            Release.objects.create(app=apps[name], version=1, image="x", process_types={}, config={})
        container = ContainerFactory(
            host=host,
            app=apps[name],
            release=apps[name].releases.get(),
            size=size,
            process_type=process_type,
            started_at=start,
            finished_at=end,
            state=Container.State.REMOVED if end else Container.State.RUNNING,
        )
        usage_sync([container.pk], now=frozen)
    invoices_run(now=frozen)  # finalizes October
    Formation.objects.create(app=apps["blog"], process_type="web", quantity=3, size=size)
    return {"apps": apps, "size": size}


@pytest.fixture
def billing(members):
    return members[Role.BILLING]


@pytest.fixture
def api(billing):
    return token_client(billing)


# The numbers


def test_the_usage_page_shows_the_apis_numbers_for_the_month(world, billing, api, dashboard_client):
    response = dashboard_client(billing).get(USAGE)
    assert response.status_code == 200
    report = api.get(f"{API}/usage/?period=2026-11").json()
    by_day = api.get(f"{API}/usage/?period=2026-11&group_by=day").json()
    shown = tables(response)

    # The total so far, in money and container-hours.
    assert (report["total_cost"], report["total_seconds"]) == ("3.96", "39600.000")
    html = response.content.decode()
    assert f'id="total-cost">{report["total_cost"]} USD<' in html
    assert f'id="total-hours">{hours(report["total_seconds"])}<' in html  # 11.00

    # By app, process type and size, with the total under it.
    assert shown["usage-rows"][1:-1] == [
        [row["app"], row["process_type"], row["size"], hours(row["seconds"]), row["cost"]] for row in report["rows"]
    ]
    assert shown["usage-rows"][-1] == ["Total", "11.00", "3.96"]

    # By day: every day of the month so far, a day without usage at zero, in the table and in the chart's data.
    api_days = {row["day"]: row for row in by_day["rows"]}
    expected = [
        [
            day,
            hours(api_days[day]["seconds"]) if day in api_days else "0.00",
            api_days.get(day, {"cost": "0.00"})["cost"],
        ]
        for day in ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    ]
    assert shown["usage-days"][1:] == expected
    assert [row[2] for row in expected] == ["0.00", "0.72", "1.08", "2.16"]
    chart = json.loads(re.search(r'<script id="usage-by-day" type="application/json">(.*?)</script>', html).group(1))
    assert chart == {"currency": "USD", "days": [row[0] for row in expected], "cost": [row[2] for row in expected]}


def test_the_csv_is_the_apis_rows_by_day_app_process_type_and_size_and_sums_to_the_total(
    world, billing, api, dashboard_client
):
    response = dashboard_client(billing).get(CSV_URL, {"period": "2026-11"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="usage-acme-2026-11.csv"'
    from_api = api.get(f"{API}/usage/?period=2026-11&group_by=day,app,process_type,size&format=csv")
    assert response.content == from_api.content

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["day"], r["app"], r["process_type"], r["size"], r["seconds"], r["cost"]) for r in rows] == [
        ("2026-11-02", "shop", "web", "small", "7200.000", "0.72"),
        ("2026-11-03", "shop", "web", "small", "7200.000", "0.72"),
        ("2026-11-03", "shop", "worker", "small", "3600.000", "0.36"),
        ("2026-11-04", "blog", "web", "small", "21600.000", "2.16"),
    ]
    report = api.get(f"{API}/usage/?period=2026-11&group_by=day,app,process_type,size").json()
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal(report["total_cost"])
    assert sum(Decimal(r["seconds"]) for r in rows) == Decimal(report["total_seconds"])
    # And to the total the page shows.
    assert (
        f'id="total-cost">{sum(Decimal(r["cost"]) for r in rows)} USD<'
        in dashboard_client(billing).get(USAGE).content.decode()
    )


def test_each_table_shows_the_apis_rounding_never_a_sum_of_its_own(
    organization, billing, api, dashboard_client, frozen
):
    """Two apps ran 50 s each on one day, half a cent each at 0.36 an hour: each row rounds up to a cent, the day
    (100 s) is one cent. The page shows what the API says for each grouping, never a total it added up."""
    for name in ("shop", "blog"):
        UsageRecord.objects.create(
            organization=organization,
            app_name=name,
            process_type="web",
            size_name="small",
            price_per_hour=Decimal("0.36"),
            currency="USD",
            started_at=at(2026, 11, 3, 12),
            ended_at=at(2026, 11, 3, 12, 0, 50),
            period=date(2026, 11, 1),
        )
    response = dashboard_client(billing).get(USAGE)
    report = api.get(f"{API}/usage/").json()
    by_day = api.get(f"{API}/usage/?group_by=day").json()
    assert [row["cost"] for row in report["rows"]] == ["0.01", "0.01"]
    assert (report["total_cost"], by_day["total_cost"]) == ("0.02", "0.01")
    shown = tables(response)
    assert [row[-1] for row in shown["usage-rows"][1:]] == ["0.01", "0.01", "0.02"]
    assert shown["usage-days"][3] == ["2026-11-03", "0.03", "0.01"]
    assert 'id="total-cost">0.02 USD<' in response.content.decode()


def test_the_csv_of_an_earlier_month(world, billing, dashboard_client):
    response = dashboard_client(billing).get(CSV_URL, {"period": "2026-10"})
    assert response["Content-Disposition"] == 'attachment; filename="usage-acme-2026-10.csv"'
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["day", "app", "process_type", "size", "seconds", "cost", "currency"],
        ["2026-10-15", "shop", "web", "small", "18000.000", "1.80", "USD"],
    ]


def test_quotas_show_what_is_used_of_each_limit(world, organization, billing, dashboard_client, api):
    quota_set(actor=None, organization=organization, max_containers=10, max_memory_mb=1024)
    response = dashboard_client(billing).get(USAGE)
    quota = api.get(f"{API}/quota/").json()
    assert (quota["containers"], quota["memory_mb"]) == (3, 768)
    assert tables(response)["usage-quotas"][1:] == [
        ["Apps", str(quota["apps"]), str(quota["max_apps"]), "2 of 50"],
        ["Containers", "3", "10", "3 of 10"],
        ["Memory", "768 MB", "1024 MB", "768 of 1024"],
    ]
    html = response.content.decode()
    assert '<meter min="0" max="10" value="3" aria-label="Containers: 3 of 10">' in html
    assert '<meter min="0" max="1024" value="768" aria-label="Memory: 768 of 1024 MB">' in html


def test_invoices_are_listed_newest_first_with_the_live_draft(world, billing, api, dashboard_client):
    response = dashboard_client(billing).get(USAGE)
    listed = api.get(f"{API}/invoices/").json()["results"]
    assert [(i["period"], i["state"], i["total"]) for i in listed] == [
        ("2026-11", "draft", "3.96"),
        ("2026-10", "finalized", "1.80"),
    ]
    assert tables(response)["usage-invoices"][1:] == [
        ["November 2026", "Draft so far", "3.96 USD"],
        ["October 2026", "Finalized", "1.80 USD"],
    ]
    html = response.content.decode()
    assert f'href="{invoice_url("2026-11")}"' in html
    assert f'href="{invoice_url("2026-10")}"' in html


@pytest.mark.parametrize("period", ["2026-10", "2026-11"])
def test_an_invoice_shows_its_lines_as_the_api_has_them(world, billing, api, dashboard_client, period):
    response = dashboard_client(billing).get(invoice_url(period))
    assert response.status_code == 200
    invoice = api.get(f"{API}/invoices/{period}/").json()
    shown = tables(response)["invoice-lines"]
    assert shown[1:-1] == [
        [
            line["app_name"],
            line["process_type"],
            line["size_name"],
            "0.36",  # the price per hour, stored as 0.360000
            hours(line["seconds"]),
            line["amount"],
        ]
        for line in invoice["lines"]
    ]
    assert shown[-1] == ["Total", invoice["total"]]
    assert f'id="invoice-total"><strong>{invoice["total"]} USD</strong>' in response.content.decode()
    state = {"2026-10": "Finalized", "2026-11": "Draft"}[period]
    assert f'<span class="badge {invoice["state"]}">{state}</span>' in response.content.decode()


def test_the_october_invoice_bills_what_october_ran(world, billing, dashboard_client):
    shown = tables(dashboard_client(billing).get(invoice_url("2026-10")))["invoice-lines"]
    assert shown[1:] == [["shop", "web", "small", "0.36", "5.00", "1.80"], ["Total", "1.80"]]


def test_a_month_without_an_invoice_is_a_404_page(world, billing, dashboard_client):
    response = dashboard_client(billing).get(invoice_url("2026-09"))
    assert response.status_code == 404
    assert b"Not found" in response.content


# Months


def test_the_page_goes_from_month_to_month(world, billing, api, dashboard_client):
    client = dashboard_client(billing)
    november = client.get(USAGE).content.decode()
    assert 'href="?period=2026-10" rel="prev">← October 2026</a>' in november
    assert 'rel="next"' not in november.split('id="invoices"')[0]  # nothing after the current month
    assert "Cost so far this month" in november

    october = client.get(USAGE, {"period": "2026-10"})
    html = october.content.decode()
    report = api.get(f"{API}/usage/?period=2026-10").json()
    assert f'id="total-cost">{report["total_cost"]} USD<' in html
    assert report["total_cost"] == "1.80"
    assert "Cost in October 2026" in html
    assert 'href="?period=2026-09" rel="prev">← September 2026</a>' in html
    assert 'href="?period=2026-11" rel="next">November 2026 →</a>' in html
    days = tables(october)["usage-days"][1:]
    assert len(days) == 31
    assert days[14] == ["2026-10-15", "5.00", "1.80"]
    assert f'href="{CSV_URL}?period=2026-10"' in html


def test_a_month_with_nothing_says_so(world, billing, dashboard_client):
    html = dashboard_client(billing).get(USAGE, {"period": "2025-03"}).content.decode()
    assert 'id="total-cost">0.00 USD<' in html
    assert "No containers ran in March 2025." in html


def test_the_first_month_there_is_has_no_month_before(billing, dashboard_client, frozen):
    html = dashboard_client(billing).get(USAGE, {"period": "2000-01"}).content.decode()
    assert 'rel="prev"' not in html
    assert 'href="?period=2000-02" rel="next"' in html


def test_invoices_come_a_year_to_a_page(world, organization, billing, dashboard_client):
    # With October's and November 2026's draft: 13 invoices, newest first, 12 to a page.
    for month in range(1, 10):
        Invoice.objects.create(organization=organization, period=date(2026, month, 1), state=Invoice.State.FINALIZED)
    Invoice.objects.create(organization=organization, period=date(2025, 12, 1), state=Invoice.State.FINALIZED)
    Invoice.objects.create(organization=organization, period=date(2025, 11, 1), state=Invoice.State.FINALIZED)
    client = dashboard_client(billing)
    first = client.get(USAGE)
    months = [row[0] for row in tables(first)["usage-invoices"][1:]]
    assert months[:3] == ["November 2026", "October 2026", "September 2026"]
    assert len(months) == 12 and months[-1] == "December 2025"
    assert 'href="?period=2026-11&amp;page=2" rel="next">Older</a>' in first.content.decode()
    second = client.get(USAGE, {"page": 2})
    assert [row[0] for row in tables(second)["usage-invoices"][1:]] == ["November 2025"]
    assert 'href="?period=2026-11&amp;page=1" rel="prev">Newer</a>' in second.content.decode()


@pytest.mark.parametrize(
    "period", ["2026-13", "26-11", "2026-1", "1999-12", "november", "2026-11-01", "\uff12\uff10\uff12\uff16-11"]
)
def test_a_month_that_cannot_exist_is_a_404_page_never_an_error(world, billing, dashboard_client, period):
    client = dashboard_client(billing)
    for response in (
        client.get(USAGE, {"period": period}),
        client.get(CSV_URL, {"period": period}),
        client.get(invoice_url(period)),
    ):
        assert response.status_code == 404
        assert b"Not found" in response.content


# Who may see it


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.BILLING])
def test_owners_admins_and_the_billing_role_see_usage_csv_and_invoices(world, members, dashboard_client, role):
    client = dashboard_client(members[role])
    assert client.get(USAGE).status_code == 200
    assert client.get(CSV_URL).status_code == 200
    assert client.get(invoice_url("2026-10")).status_code == 200


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_developers_and_viewers_get_the_403_page_naming_the_roles(world, members, dashboard_client, role):
    client = dashboard_client(members[role])
    for response in (client.get(USAGE), client.get(CSV_URL), client.get(invoice_url("2026-10"))):
        assert response.status_code == 403
        assert b"owner, admin or billing" in response.content
        assert b"3.96" not in response.content and b"1.80" not in response.content
    assert b">Usage<" not in client.get(reverse("dashboard:org-home", args=["acme"])).content


def test_a_member_of_another_organization_gets_404_for_page_csv_and_invoice(world, outsider, dashboard_client):
    client = dashboard_client(outsider)
    for url in (USAGE, CSV_URL + "?period=2026-11", invoice_url("2026-10"), invoice_url("2026-11")):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"1.80" not in response.content and b"3.96" not in response.content


def test_the_pages_only_read(world, billing, dashboard_client):
    client = dashboard_client(billing)
    before = list(Invoice.objects.values_list("period", "state", "total"))
    for url in (USAGE, CSV_URL, invoice_url("2026-10")):
        assert client.post(url).status_code == 405
    assert list(Invoice.objects.values_list("period", "state", "total")) == before


# Queries: the same number whatever the number of apps, days, lines and invoices


def _ledger(organization, *, apps: int, days: int, months: int, lines: int) -> None:
    """Rows straight into the ledger and stored invoices, for sizes the metering path would take long to make."""
    records = [
        UsageRecord(
            organization=organization,
            app_name=f"app-{a}",
            process_type=process_type,
            size_name="small",
            price_per_hour=Decimal("0.36"),
            currency="USD",
            started_at=at(2026, 11, 1) + timedelta(days=d, hours=1),
            ended_at=at(2026, 11, 1) + timedelta(days=d, hours=2),
            period=date(2026, 11, 1),
        )
        for a in range(apps)
        for process_type in ("web", "worker")
        for d in range(days)
    ]
    UsageRecord.objects.bulk_create(records)
    for m in range(months):
        year, month = divmod(2026 * 12 + 9 - m, 12)  # October 2026 and the months before it
        invoice = Invoice.objects.create(
            organization=organization,
            period=date(year, month + 1, 1),
            state=Invoice.State.FINALIZED,
            total=Decimal(lines),
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                app_name=f"app-{n}",
                process_type="web",
                size_name="small",
                price_per_hour=Decimal("0.36"),
                seconds=Decimal("10000.000"),
                amount=Decimal("1.00"),
            )
            for n in range(lines)
        )


# Every page: the session, its user, the membership with its organization, the nav's organizations.
# A usage read (usage_for_period) is 5: its savepoint, the roll-up lock, the roll-up's mark, the report, the release.
# The usage page: two reads (by app, by day); the quota and what the apps use of it (3); the invoices:
# the live draft, the stored ones' count and their page.
USAGE_QUERIES = 3 + 1 + 2 * 5 + 3 + 3
# The CSV: no nav; one read.
CSV_QUERIES = 3 + 5
# A stored invoice and its lines; the current month's draft is one read of the ledger.
INVOICE_QUERIES = 4 + 2
DRAFT_QUERIES = 4 + 1


@pytest.mark.parametrize(("apps", "days", "months", "lines"), [(1, 1, 1, 1), (25, 4, 20, 60)])
def test_queries_of_the_usage_page_do_not_grow(
    organization, billing, dashboard_client, frozen, django_assert_num_queries, apps, days, months, lines
):
    _ledger(organization, apps=apps, days=days, months=months, lines=lines)
    client = dashboard_client(billing)
    with django_assert_num_queries(USAGE_QUERIES):
        response = client.get(USAGE)
    assert len(tables(response)["usage-rows"]) == 2 * apps + 2
    assert len(tables(response)["usage-invoices"]) == min(months + 1, 12) + 1
    with django_assert_num_queries(CSV_QUERIES):
        response = client.get(CSV_URL)
    assert len(response.content.splitlines()) == 2 * apps * days + 1


@pytest.mark.parametrize(("apps", "days", "months", "lines"), [(1, 1, 1, 1), (25, 4, 3, 60)])
def test_queries_of_the_invoice_page_do_not_grow(
    organization, billing, dashboard_client, frozen, django_assert_num_queries, apps, days, months, lines
):
    _ledger(organization, apps=apps, days=days, months=months, lines=lines)
    client = dashboard_client(billing)
    with django_assert_num_queries(INVOICE_QUERIES):
        response = client.get(invoice_url("2026-10"))
    assert len(tables(response)["invoice-lines"]) == lines + 2
    with django_assert_num_queries(DRAFT_QUERIES):
        response = client.get(invoice_url("2026-11"))
    assert len(tables(response)["invoice-lines"]) == 2 * apps + 2


# In Chromium


def test_the_billing_role_sees_the_chart_its_table_and_downloads_the_csv(world, billing, page_as, api):
    page = page_as(billing)
    page.goto(USAGE)
    chart = page.locator("#usage-chart canvas")
    chart.wait_for()
    assert chart.bounding_box()["width"] > 200
    # The same numbers as a table, for a screen reader and without JavaScript.
    page.get_by_text("Cost by day as a table").click()
    assert page.locator("#usage-days tbody tr").count() == 4
    assert page.locator("#usage-days tbody tr").nth(3).inner_text().split() == ["2026-11-04", "6.00", "2.16"]
    assert_accessible(page)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == "usage-acme-2026-11.csv"
    with open(download.path(), "rb") as saved:
        assert saved.read() == api.get(f"{API}/usage/?group_by=day,app,process_type,size&format=csv").content
    assert page.url.endswith(USAGE)  # the page stays where it was


def test_the_invoice_page_in_chromium(world, billing, page_as):
    page = page_as(billing)
    page.goto(USAGE)
    page.locator("#usage-invoices").get_by_role("link", name="October 2026").click()
    page.get_by_role("heading", name="Invoice October 2026").wait_for()
    assert page.locator("#invoice-lines tfoot").inner_text().split() == ["Total", "1.80"]
    assert_accessible(page)


def test_uplot_loads_on_the_usage_page_only_and_comes_with_a_boosted_navigation(world, billing, page_as):
    page = page_as(billing)
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    page.goto(reverse("dashboard:org-home", args=["acme"]))
    page.goto(invoice_url("2026-10"))
    assert not [url for url in loaded if "uplot" in url.lower() or "usage-chart" in url]
    # Following the nav's link swaps the body in (hx-boost): the chart's script and stylesheet come with it.
    page.get_by_role("link", name="Usage", exact=True).click()
    page.locator("#usage-chart canvas").wait_for()
    assert {"uPlot.iife.min.js", "uPlot.min.css", "usage-chart.js"} <= {url.rsplit("/", 1)[-1] for url in loaded}
    assert page.locator("#usage-chart .u-over").evaluate("element => getComputedStyle(element).position") == "absolute"


# Weight


def _assets(html: str) -> list[str]:
    return re.findall(r'<(?:script src|link rel="stylesheet" href)="([^"]+)"', html)


def test_the_usage_page_weighs_little_and_only_it_carries_uplot(world, billing, dashboard_client):
    client = dashboard_client(billing)
    usage = client.get(USAGE).content.decode()
    assets = _assets(usage)
    assert any("uPlot.iife.min.js" in url for url in assets)
    assert any("uPlot.min.css" in url for url in assets)
    for other in (reverse("dashboard:org-home", args=["acme"]), invoice_url("2026-10")):
        assert not [url for url in _assets(client.get(other).content.decode()) if "uplot" in url.lower()]
    weight = len(gzip.compress(usage.encode()))
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        weight += len(gzip.compress(b"".join(response.streaming_content)))
    # HTML, CSS and JS as transferred with gzip: the app overview's budget of 100 KB (issue 11).
    assert weight < 100 * 1024, weight
