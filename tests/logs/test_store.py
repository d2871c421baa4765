"""The log store against the real Redis: order, bounds, filters and the cursor that forbids doubles."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from berth.logs import store
from berth.logs.lines import BERTH, MAX_LINE_CHARS, STDERR, STDOUT, clean, ns_of
from berth.logs.store import Entry, Filter

APP_ID = 987_654
# The store's keys name the database (its oid too), so every test here asks it once.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_stream():
    keys = [store.stream_key(APP_ID), store.cursor_key("c1"), store.cursor_key("c2")]
    store.client().delete(*keys)
    yield
    store.client().delete(*keys)


def lines(start_ns: int, count: int, process: str = "web.1") -> list[Entry]:
    kind = process.split(".")[0]
    return [Entry(start_ns + i, f"{process} line {i}", process=process, process_type=kind) for i in range(count)]


def test_a_container_s_lines_are_stored_once_however_often_they_are_read_again():
    base = ns_of(timezone.now())
    assert store.append(APP_ID, lines(base, 10), docker_id="c1") == 10
    # A follower that restarted reads from its cursor again (Docker's `since` is inclusive), overlapping.
    assert store.append(APP_ID, lines(base + 5, 10), docker_id="c1") == 5
    assert store.cursor("c1") == base + 14
    texts = [line.text for line in store.recent(APP_ID, lines=100)]
    assert texts == [f"web.1 line {i}" for i in range(10)] + [f"web.1 line {i}" for i in range(5, 10)]
    assert len(texts) == 15


def test_recent_returns_the_newest_matching_lines_oldest_first():
    base = ns_of(timezone.now())
    store.append(APP_ID, lines(base, 30), docker_id="c1")
    store.append(APP_ID, lines(base, 30, "worker.1"), docker_id="c2")
    store.say(APP_ID, "deploy", "Release v2 is live", process_type="web")
    got = store.recent(APP_ID, lines=5, where=Filter(process_type="web", source="app", search="LINE 2"))
    assert [line.text for line in got] == [f"web.1 line {i}" for i in range(25, 30)]
    assert all(line.process == "web.1" and line.source == "app" for line in got)
    berth = store.recent(APP_ID, lines=10, where=Filter(source=BERTH))
    assert [(line.process, line.text) for line in berth] == [("deploy", "Release v2 is live")]
    assert berth[0].formatted().endswith(" berth[deploy]: Release v2 is live")


def test_after_reads_on_from_an_id_and_says_where_to_go_on():
    base = ns_of(timezone.now())
    store.append(APP_ID, lines(base, 3), docker_id="c1")
    start = store.last_id(APP_ID)
    store.append(APP_ID, lines(base + 3, 4), docker_id="c1")
    got, next_id = store.after(APP_ID, start)
    assert [line.text for line in got] == [f"web.1 line {i}" for i in range(4)]
    assert next_id == store.last_id(APP_ID)
    assert store.after(APP_ID, next_id) == ([], next_id)


@override_settings(BERTH_LOG_MAX_LINES=1000)
def test_the_stream_is_bounded_by_lines():
    base = ns_of(timezone.now())
    for batch in range(10):
        store.append(APP_ID, lines(base + batch * 500, 500), docker_id="c1")
    kept = store.client().xlen(store.stream_key(APP_ID))
    # MAXLEN ~ trims whole nodes (100 entries by default): never below the bound, at most a node above.
    assert 1000 <= kept <= 1100


@override_settings(BERTH_LOG_MAX_AGE_HOURS=1)
def test_the_stream_is_bounded_by_age():
    client = store.client()
    key = store.stream_key(APP_ID)
    old_ms = int((timezone.now() - timedelta(hours=2)).timestamp() * 1000)
    for i in range(300):  # old entries, stored as if two hours ago
        client.xadd(key, {"t": "0", "l": "old"}, id=f"{old_ms}-{i}")
    store.append(APP_ID, lines(ns_of(timezone.now()), 300), docker_id="c1")
    texts = [line.text for line in store.recent(APP_ID, lines=1000)]
    # MINID ~ trims only whole nodes; what remains of the old entries is less than one node.
    assert texts.count("old") < 100
    assert "web.1 line 299" in texts


def test_clean_cuts_huge_lines_and_escapes_what_is_not_text():
    assert clean(b"caf\xc3\xa9 \xff\x00\x1b[31mred\tok\r\n") == "café \\xff\\x00\\x1b[31mred\tok"
    huge = clean("x" * (MAX_LINE_CHARS + 5000))
    assert huge.startswith("x" * MAX_LINE_CHARS) and huge.endswith(" [line cut: 5000 more characters]")


def test_each_stream_has_its_own_cursor():
    """Docker stamps stdout and stderr in two threads: a container's log may hold a stderr line stamped
    before the stdout line written ahead of it. It is kept, and neither is stored twice on a re-read."""
    base = ns_of(timezone.now())
    written = [
        Entry(base + 10, "out", process="web.1", stream=STDOUT),
        Entry(base + 5, "err", process="web.1", stream=STDERR),
    ]
    assert store.append(APP_ID, written, docker_id="c1") == 2
    assert store.append(APP_ID, written, docker_id="c1") == 0
    assert store.cursors("c1") == {STDOUT: base + 10, STDERR: base + 5}
    assert store.cursor("c1") == base + 10
    assert store.resume_ns(store.cursors("c1")) == base + 5 - store.RESUME_MARGIN_NS
    assert store.resume_ns({}) is None
    assert [(line.stream, line.text) for line in store.recent(APP_ID)] == [(STDOUT, "out"), (STDERR, "err")]


def test_a_line_that_did_not_go_through_clean_cannot_break_an_append():
    base = ns_of(timezone.now())
    odd = Entry(base, "one\x1ftwo\x1ethree", process="web\x1f1", stream=STDERR)
    assert store.append(APP_ID, [odd, Entry(base + 1, "next")], docker_id="c1") == 2
    first, second = store.recent(APP_ID)
    assert (first.text, first.process, first.stream) == ("one\\x1ftwo\\x1ethree", "web\\x1f1", STDERR)
    assert (second.text, second.stream) == ("next", STDOUT)


def test_a_database_made_again_does_not_find_the_lines_of_the_one_before():
    """App ids start again in a database dropped and created again (or restored from a backup): the log
    store must not hand a new app the lines of the app that had its id before."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    base = settings.DATABASES["default"]
    name = f"{base['NAME']}_again"
    url = f"postgres://{base['USER']}@{base['HOST']}:{base['PORT']}/{name}"
    program = (
        "import sys, django; django.setup();"
        "from berth.logs import store; from berth.logs.lines import ns_of; from django.utils import timezone;"
        "store.append(7, [store.Entry(ns_of(timezone.now()), sys.argv[1])]) if sys.argv[1] != '-' else None;"
        "print([line.text for line in store.recent(7)])"
    )
    root = settings.REPO_ROOT
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "berth.settings.test",
        "PYTHONPATH": f"{root / 'platform'}:{root}",
    }

    def run(*args: str) -> str:
        command = [sys.executable, "-c", program, *args]
        return subprocess.run(command, env=env, cwd=root, check=True, capture_output=True, text=True).stdout

    def database(action: str) -> None:
        where = ["-h", base["HOST"], "-p", str(base["PORT"]), "-U", base["USER"]]
        options = ["--if-exists"] if action == "dropdb" else []
        subprocess.run([action, *where, *options, name], check=True)

    database("dropdb")
    try:
        database("createdb")
        assert run("a line of the first database") == "['a line of the first database']\n"
        database("dropdb")
        database("createdb")
        assert run("-") == "[]\n"
    finally:
        database("dropdb")
