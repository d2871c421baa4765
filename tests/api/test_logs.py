"""GET …/apps/{app}/logs/: the newest lines as text, NDJSON or JSON, filtered, refused by name when asked
wrongly, and never another tenant's (who may call it at all is in test_access_matrix.py)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from berth.logs import store
from berth.logs.lines import BERTH, STDERR, ns_of
from berth.logs.store import Entry
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(organization):
    app = AppFactory(organization=organization, name="shop")
    store.client().delete(store.stream_key(app.pk))
    yield app
    store.client().delete(store.stream_key(app.pk))


def url(app, **params) -> str:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"/api/v1/orgs/{app.organization.slug}/apps/{app.name}/logs/" + (f"?{query}" if query else "")


def write(app, texts, *, process="web.1", at=None, **fields):
    base = ns_of(at or timezone.now())
    kind = process.split(".")[0]
    entries = [Entry(base + i, text, process=process, process_type=kind, **fields) for i, text in enumerate(texts)]
    return store.append(app.pk, entries)


def test_text_is_the_default_one_formatted_line_each(shop, owner_client):
    write(shop, ["listening on 8080", "GET / 200"])
    store.say(shop.pk, "deploy", "Release v2 is live", process_type="web")
    response = owner_client.get(url(shop))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "app[web.1]: listening on 8080",
        "app[web.1]: GET / 200",
        "berth[deploy]: Release v2 is live",
    ]
    assert lines[0][:27].endswith("Z") and lines[0][10] == "T"


@pytest.mark.parametrize("how", ["accept", "format"])
def test_ndjson_one_object_per_line(shop, owner_client, how):
    write(shop, ["out"])
    write(shop, ["boom"], stream=STDERR, at=timezone.now() + timedelta(milliseconds=1))
    if how == "accept":
        response = owner_client.get(url(shop), HTTP_ACCEPT="application/x-ndjson")
    else:
        response = owner_client.get(url(shop, format="ndjson"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.content.decode().splitlines()]
    assert [(row["line"], row["stream"], row["process"], row["source"]) for row in rows] == [
        ("out", "stdout", "web.1", "app"),
        ("boom", "stderr", "web.1", "app"),
    ]
    assert set(rows[0]) == {"id", "time", "source", "process", "process_type", "stream", "line"}


def test_json_when_asked_for(shop, owner_client):
    write(shop, ["hello"])
    response = owner_client.get(url(shop), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert [row["line"] for row in response.json()] == ["hello"]


def test_lines_process_type_source_and_search_filter(shop, owner_client):
    write(shop, [f"web {i}" for i in range(30)])
    write(shop, [f"worker {i}" for i in range(5)], process="worker.1")
    store.say(shop.pk, "router", "web.2 joined", process_type="web")
    text = lambda response: [line.split(": ", 1)[1] for line in response.content.decode().splitlines()]  # noqa: E731
    assert text(owner_client.get(url(shop, lines=3))) == ["worker 3", "worker 4", "web.2 joined"]
    assert text(owner_client.get(url(shop, lines=2, process_type="web"))) == ["web 29", "web.2 joined"]
    assert text(owner_client.get(url(shop, source="berth"))) == ["web.2 joined"]
    assert text(owner_client.get(url(shop, search="WEB%201"))) == ["web 1"] + [f"web {i}" for i in range(10, 20)]
    assert text(owner_client.get(url(shop, process_type="worker", source="app", lines=10_000))) == [
        f"worker {i}" for i in range(5)
    ]


def test_since_keeps_only_lines_stored_from_then_on(shop, owner_client):
    write(shop, ["old"])
    # Lines are stored (and so filtered by `since`) by the time they arrived; wait for the next millisecond.
    moment = timezone.now() + timedelta(milliseconds=5)
    while timezone.now() <= moment:
        pass
    write(shop, ["new"])
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert owner_client.get(url(shop, since=stamp)).content.decode().endswith("app[web.1]: new\n")
    assert "old" not in owner_client.get(url(shop, since=stamp)).content.decode()
    assert "old" in owner_client.get(url(shop, since="10m")).content.decode()


def test_printed_markup_and_control_characters_come_back_as_text(shop, owner_client):
    write(shop, [store_clean("<script>alert(1)</script>"), store_clean(b"bin\x00\x1b[31m\xff")])
    rows = [json.loads(line) for line in owner_client.get(url(shop, format="ndjson")).content.decode().splitlines()]
    assert [row["line"] for row in rows] == ["<script>alert(1)</script>", "bin\\x00\\x1b[31m\\xff"]


def store_clean(raw):
    from berth.logs.lines import clean

    return clean(raw)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lines": "10001"}, "lines"),
        ({"lines": "many"}, "lines"),
        ({"since": "last-week"}, "since"),
        ({"process_type": "Web!"}, "process_type"),
        ({"source": "router"}, "source"),
        ({"search": "x" * 201}, "search"),
        ({"format": "xml"}, "format"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_field(shop, owner_client, params, field):
    response = owner_client.get(url(shop, **params))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert list(body["fields"]) == [field]
    assert response["Content-Type"] == "application/json"


def test_another_tenant_s_lines_never_appear(shop, members):
    """Two organizations, each with an app called shop: each reads its own lines, and only them."""
    other_org = OrganizationFactory(slug="globex")
    other_owner = MembershipFactory(organization=other_org, role=Role.OWNER).user
    other_shop = AppFactory(organization=other_org, name="shop")
    store.client().delete(store.stream_key(other_shop.pk))
    try:
        write(shop, ["acme's secret"])
        write(other_shop, ["globex's secret"])
        mine = token_client(members[Role.VIEWER]).get(url(shop)).content.decode()
        theirs = token_client(other_owner).get(url(other_shop)).content.decode()
        assert "acme's secret" in mine and "globex" not in mine
        assert "globex's secret" in theirs and "acme" not in theirs
        # And asking for the other's app by its organization's URL is the same 404 as for nothing.
        assert token_client(other_owner).get(url(shop)).status_code == 404
        assert token_client(members[Role.OWNER]).get(url(other_shop)).status_code == 404
    finally:
        store.client().delete(store.stream_key(other_shop.pk))


def test_billing_may_not_read_logs(shop, members):
    write(shop, ["hidden"])
    response = token_client(members[Role.BILLING]).get(url(shop))
    assert response.status_code == 403
    assert "hidden" not in response.content.decode()


def test_an_unknown_app_is_a_404(organization, owner_client):
    response = owner_client.get(f"/api/v1/orgs/{organization.slug}/apps/nope/logs/")
    assert response.status_code == 404


def test_berth_lines_say_so(shop, owner_client):
    store.say(shop.pk, "health", "web.1 failed its health check", process_type="web")
    row = json.loads(owner_client.get(url(shop, format="ndjson")).content)
    assert (row["source"], row["process"], row["process_type"]) == (BERTH, "health", "web")


def test_no_line_at_all_is_still_text(shop, owner_client):
    response = owner_client.get(url(shop))
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == "text/plain; charset=utf-8"


def test_a_log_store_that_does_not_answer_is_a_503(shop, own_redis, owner_client):
    own_redis.stop()
    response = owner_client.get(url(shop))
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
