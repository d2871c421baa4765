"""The live tail (…/logs/stream/) served by the web process as the Procfile starts it, read as a client reads
it: lines as they are stored, the same filters as the API, resuming with Last-Event-ID, notices for what
could not be given back (trimmed lines, a log store that restarted), heartbeats, and a normal request
answered by the same process while many tails are open."""

import json
import queue
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from django.utils import timezone

from berth.logs import store
from berth.logs.lines import ns_of
from berth.logs.store import Entry
from berth.tenancy.roles import Role
from berth.tenancy.services import api_token_create
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory
from tests.timing import wait_for
from tests.web import start_web, stop_web

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_S = 10


@dataclass
class Event:
    kind: str  # "line", "notice", or "comment" for a heartbeat
    id: str = ""
    data: dict = field(default_factory=dict)


class Tail:
    """One open tail, read in a thread of its own into a queue of events."""

    def __init__(self, url: str, token: str, *, last_event_id: str = "", params: dict | None = None):
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.client = httpx.Client(timeout=httpx.Timeout(WAIT_S, read=WAIT_S))
        self.request = self.client.build_request("GET", url, headers=headers, params=params or {})
        self.events: queue.Queue[Event] = queue.Queue()
        self.opened = threading.Event()
        self.live = threading.Event()  # the server reads on from here (its ": live" comment)
        self.status = 0
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(WAIT_S), "the tail did not answer"
        if self.status == 200:
            assert self.live.wait(WAIT_S), "the tail did not start reading"

    def _read(self) -> None:
        try:
            self.response = response = self.client.send(self.request, stream=True)
            self.status = response.status_code
            self.opened.set()
            fields: dict[str, str] = {}
            for raw in response.iter_lines():
                if raw == ": live":
                    self.live.set()
                elif raw.startswith(":"):
                    self.events.put(Event("comment"))
                elif raw:
                    name, _, value = raw.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif "data" in fields:
                    kind = "notice" if fields.get("event") == "notice" else "line"
                    self.events.put(Event(kind, fields.get("id", ""), json.loads(fields["data"])))
                    fields = {}
                else:
                    fields = {}
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by the test
        finally:
            self.opened.set()

    def next(self, kinds=("line", "notice")) -> Event:
        deadline = time.monotonic() + WAIT_S
        while True:
            event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event.kind in kinds:
                return event

    def lines(self, count: int) -> list[Event]:
        return [self.next(("line",)) for _ in range(count)]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.close()
            self.thread.join(5)


@pytest.fixture
def tails():
    opened: list[Tail] = []

    def open_tail(*args, **kwargs) -> Tail:
        tail = Tail(*args, **kwargs)
        opened.append(tail)
        return tail

    yield open_tail
    for tail in opened:
        tail.close()


@pytest.fixture
def shop(organization):
    app = AppFactory(organization=organization, name="shop")
    store.client().delete(store.stream_key(app.pk))
    yield app
    store.client().delete(store.stream_key(app.pk))


def token_of(user) -> str:
    return api_token_create(actor=user, name="tail")[1]


def stream_url(server, app) -> str:
    return f"{server.url}/api/v1/orgs/{app.organization.slug}/apps/{app.name}/logs/stream/"


def write(app, texts, *, process="web.1", **fields) -> None:
    base = ns_of(timezone.now())
    kind = process.split(".")[0]
    store.append(
        app.pk, [Entry(base + i, t, process=process, process_type=kind, **fields) for i, t in enumerate(texts)]
    )


def test_the_tail_opens_with_the_recent_lines_then_follows_new_ones(web_server, shop, members, tails):
    write(shop, [f"before {i}" for i in range(5)])
    tail = tails(stream_url(web_server, shop), token_of(members[Role.VIEWER]), params={"lines": "3"})
    assert tail.status == 200
    assert tail.response.headers["content-type"].startswith("text/event-stream")
    assert [event.data["line"] for event in tail.lines(3)] == ["before 2", "before 3", "before 4"]
    write(shop, ["live 1", "live 2"])
    store.say(shop.pk, "deploy", "Release v2 is live")
    got = tail.lines(3)
    assert [event.data["line"] for event in got] == ["live 1", "live 2", "Release v2 is live"]
    assert [event.data["source"] for event in got] == ["app", "app", "berth"]
    assert all(event.id == event.data["id"] for event in got)


def test_the_tail_applies_the_api_s_filters(web_server, shop, members, tails):
    tail = tails(
        stream_url(web_server, shop),
        token_of(members[Role.DEVELOPER]),
        params={"lines": "0", "process_type": "worker", "search": "job"},
    )
    write(shop, ["job 1 on web"])
    write(shop, ["idle", "job 2 done"], process="worker.1")
    write(shop, ["job 3 done"], process="worker.2")
    assert [(e.data["process"], e.data["line"]) for e in tail.lines(2)] == [
        ("worker.1", "job 2 done"),
        ("worker.2", "job 3 done"),
    ]


def test_a_client_that_reconnects_with_last_event_id_misses_nothing_and_gets_nothing_twice(
    web_server, shop, members, tails
):
    token = token_of(members[Role.OWNER])
    first = tails(stream_url(web_server, shop), token, params={"lines": "0"})
    write(shop, ["one", "two"])
    seen = first.lines(2)
    first.close()
    write(shop, ["three", "four"])  # while the client is away
    again = tails(stream_url(web_server, shop), token, last_event_id=seen[-1].id)
    write(shop, ["five"])
    assert [event.data["line"] for event in again.lines(3)] == ["three", "four", "five"]


def test_lines_trimmed_before_the_client_came_back_are_announced(web_server, shop, members, tails):
    token = token_of(members[Role.OWNER])
    write(shop, ["kept by the client"])
    gone_id = store.last_id(shop.pk)
    write(shop, ["trimmed 1", "trimmed 2"])
    # The retention trims the oldest lines: here, exactly, everything before the newest two.
    store.client().xtrim(store.stream_key(shop.pk), maxlen=0, approximate=False)
    write(shop, ["after the trim"])
    tail = tails(stream_url(web_server, shop), token, last_event_id=gone_id)
    notice = tail.next()
    assert notice.kind == "notice"
    assert "trimmed" in notice.data["text"]
    assert notice.data["since"] <= notice.data["until"]  # the same millisecond when written at once
    assert tail.next().data["line"] == "after the trim"


def test_heartbeats_keep_an_idle_stream_open(web_server, shop, members, tails):
    tail = tails(stream_url(web_server, shop), token_of(members[Role.OWNER]), params={"lines": "0"})
    # The server under test sends one a second (BERTH_LOG_HEARTBEAT_SECONDS=1).
    assert tail.next(("comment",)).kind == "comment"
    assert tail.next(("comment",)).kind == "comment"
    write(shop, ["still here"])
    assert tail.next().data["line"] == "still here"


def test_many_open_tails_do_not_keep_a_request_from_being_served_by_the_same_process(web_server, shop, members, tails):
    """The server has one worker process; 40 tails (more than its pool of 10 database connections) wait in
    its event loop while ordinary API requests, which need the database, are answered."""
    token = token_of(members[Role.OWNER])
    opened = [tails(stream_url(web_server, shop), token, params={"lines": "0"}) for _ in range(40)]
    assert all(tail.status == 200 for tail in opened)
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        response = httpx.get(
            f"{web_server.url}/api/v1/orgs/{shop.organization.slug}/apps/", headers=headers, timeout=10
        )
        assert response.status_code == 200
        assert [app["name"] for app in response.json()["results"]] == ["shop"]
    write(shop, ["to everyone"])
    assert all(tail.next().data["line"] == "to everyone" for tail in opened)


def test_a_client_that_goes_away_releases_its_store_connection(own_redis, shop, members, tmp_path):
    """Until the client goes away, and no longer: each tail holds one connection to the log store."""
    import redis as redis_client

    server = start_web(tmp_path, env={"BERTH_LOG_REDIS_URL": own_redis.url})
    watcher = redis_client.Redis.from_url(own_redis.url)
    try:
        blocked = lambda: sum(1 for c in watcher.client_list() if c.get("cmd") == "xread")  # noqa: E731
        opened = [
            Tail(stream_url(server, shop), token_of(members[Role.OWNER]), params={"lines": "0"}) for _ in range(3)
        ]
        wait_for(lambda: blocked() == 3, timeout=WAIT_S)
        for tail in opened:
            tail.close()
        wait_for(lambda: blocked() == 0, timeout=WAIT_S)
    finally:
        stop_web(server)


def test_the_log_store_restarting_is_said_and_the_tail_goes_on(own_redis, shop, members, tmp_path):
    server = start_web(tmp_path, env={"BERTH_LOG_REDIS_URL": own_redis.url})
    tail = Tail(stream_url(server, shop), token_of(members[Role.OWNER]), params={"lines": "0"})
    try:
        write(shop, ["before the restart"])
        assert tail.next().data["line"] == "before the restart"
        own_redis.stop()
        lost = tail.next()
        assert lost.kind == "notice" and "does not answer" in lost.data["text"]
        own_redis.start()
        store.client.cache_clear()
        texts = [tail.next().data["text"] for _ in range(2)]
        assert any("restarted" in text for text in texts), texts
        assert any("answers again" in text for text in texts), texts
        write(shop, ["after the restart"])
        assert tail.next().data["line"] == "after the restart"
    finally:
        tail.close()
        stop_web(server)


def test_a_client_resuming_after_a_restart_is_told_its_lines_are_lost(own_redis, shop, members, tmp_path):
    server = start_web(tmp_path, env={"BERTH_LOG_REDIS_URL": own_redis.url})
    token = token_of(members[Role.OWNER])
    try:
        write(shop, ["seen"])
        seen = store.last_id(shop.pk)
        own_redis.stop()
        own_redis.start()
        store.client.cache_clear()
        write(shop, ["new"])
        tail = Tail(stream_url(server, shop), token, last_event_id=seen)
        try:
            notice = tail.next()
            assert notice.kind == "notice" and "restarted" in notice.data["text"]
            assert tail.next().data["line"] == "new"
        finally:
            tail.close()
    finally:
        stop_web(server)


@pytest.mark.parametrize(
    ("who", "status"), [("outsider", 404), ("billing", 403), ("anonymous", 401), ("bad token", 401)]
)
def test_the_tail_refuses_whoever_may_not_read_and_sends_them_nothing(web_server, shop, members, outsider, who, status):
    write(shop, ["private"])
    headers = {
        "outsider": {"Authorization": f"Bearer {token_of(outsider)}"},
        "billing": {"Authorization": f"Bearer {token_of(members[Role.BILLING])}"},
        "anonymous": {},
        "bad token": {"Authorization": "Bearer berth_nope"},
    }[who]
    response = httpx.get(stream_url(web_server, shop), headers=headers, timeout=10)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert "private" not in response.text


def test_another_tenant_s_app_of_the_same_name_never_streams_into_this_one(web_server, shop, members, tails):
    other = AppFactory(organization=OrganizationFactory(slug="globex"), name="shop")
    other_owner = MembershipFactory(organization=other.organization, role=Role.OWNER).user
    store.client().delete(store.stream_key(other.pk))
    try:
        mine = tails(stream_url(web_server, shop), token_of(members[Role.VIEWER]), params={"lines": "0"})
        theirs = tails(stream_url(web_server, other), token_of(other_owner), params={"lines": "0"})
        write(other, ["globex only"])
        write(shop, ["acme only"])
        assert mine.next().data["line"] == "acme only"
        assert theirs.next().data["line"] == "globex only"
    finally:
        store.client().delete(store.stream_key(other.pk))


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"lines": "x"}, {}, "lines"),
        ({"source": "db"}, {}, "source"),
        ({}, {"Last-Event-ID": "yesterday"}, "Last-Event-ID"),
        ({"after": "1-2-3"}, {}, "after"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_field(web_server, shop, members, params, headers, field):
    token = token_of(members[Role.OWNER])
    response = httpx.get(
        stream_url(web_server, shop), params=params, headers={"Authorization": f"Bearer {token}", **headers}, timeout=10
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
