"""The log collector (`python -m worker.logs`) against real engines and the real Redis: what containers
print arrives with Docker's timestamps and streams, once, whatever dies in between (docs/logs.md)."""

import itertools
import os
import signal
import socket
import subprocess
import sys
import time

import docker
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings

from berth.deployments.services import formation_scale, release_create
from berth.logs import store
from berth.logs.lines import BERTH, MAX_LINE_CHARS
from berth.logs.store import Filter
from tests.deployments.helpers import live, run_deployments
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import hosts_script
from tests.timing import wait_for
from tests.workers import REPO_ROOT, database_url
from worker.engine import Engine, docker_ns
from worker.logs import Source, open_logs, read
from worker.reconcile import observe_host
from worker.runtime import stop_container

pytestmark = pytest.mark.docker


class Collector:
    """`python -m worker.logs` in a process group of its own, on this test's database."""

    def __init__(self, log) -> None:
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, **settings_env: str) -> "Collector":
        env = {
            **os.environ,
            **settings_env,
            "DJANGO_SETTINGS_MODULE": "berth.settings.test",
            "DATABASE_URL": database_url(connection.settings_dict),
            "BERTH_LOG_REDIS_URL": settings.BERTH_LOG_REDIS_URL,
        }
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.logs"],
                cwd=REPO_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def collectors(fleet, tmp_path):
    started: list[Collector] = []

    def start(**settings_env: str) -> Collector:
        collector = Collector(tmp_path / f"collector-{len(started)}.log").start(**settings_env)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.kill()


@pytest.fixture
def app(fleet):
    """An app whose log is empty (ids repeat from run to run, and the store outlives test databases)."""
    app = AppFactory()
    store.client().delete(store.stream_key(app.pk))
    yield app
    store.client().delete(store.stream_key(app.pk))


def run(
    test_host, app, command: str, *, process_type: str = "web", index: int = 0, log_options: dict | None = None
) -> str:
    """A container with Berth's labels on a test host, as the collector finds Berth's own."""
    client = docker.APIClient(base_url=test_host.engine_url, timeout=30)
    labels = {
        "berth.managed": "true",
        "berth.app_id": str(app.pk),
        "berth.process_type": process_type,
        "berth.index": str(index),
    }
    created = client.create_container(
        "berth-test/web:v1",
        command=["sh", "-c", command],
        labels=labels,
        host_config=client.create_host_config(log_config={"Type": "json-file", "Config": log_options or {}}),
    )
    client.start(created["Id"])
    client.close()
    return created["Id"]


def docker_lines(test_host, docker_id: str) -> list[tuple[int, str]]:
    """What `docker logs --timestamps` says: (ns, text) per line."""
    client = docker.APIClient(base_url=test_host.engine_url, timeout=30)
    raw = client.logs(docker_id, timestamps=True).decode()
    client.close()
    return [(docker_ns(line.split(" ", 1)[0].encode()), line.split(" ", 1)[1]) for line in raw.splitlines()]


def app_lines(app, **where):
    return store.recent(app.pk, lines=100_000, where=Filter(**where))


def test_lines_from_two_hosts_arrive_with_docker_s_timestamps_and_streams(collectors, app, testbed_hosts):
    collectors()
    script = "for i in $(seq 1 50); do echo out $i; echo err $i >&2; done; sleep 600"
    ids = [run(host, app, script, index=index) for index, host in enumerate(testbed_hosts[:2])]
    wait_for(lambda: len(app_lines(app)) == 200, timeout=30)
    for index, (host, docker_id) in enumerate(zip(testbed_hosts, ids, strict=False)):
        lines = app_lines(app, process_type="web")
        mine = [line for line in lines if line.process == f"web.{index}"]
        assert [line.text for line in mine if line.stream == "stdout"] == [f"out {i}" for i in range(1, 51)]
        assert [line.text for line in mine if line.stream == "stderr"] == [f"err {i}" for i in range(1, 51)]
        assert all(line.source == "app" for line in mine)
        # Each line carries the time Docker stamped it with, to the nanosecond.
        assert sorted((line.ns, line.text) for line in mine) == sorted(docker_lines(host, docker_id))


def test_lines_docker_sends_again_as_it_rotates_a_container_s_log_file_are_read_once(fleet, app, testbed_hosts):
    # Docker's json-file driver, following a file it rotates (max-size), sends some lines again with their
    # own timestamps. A small max-size makes it rotate a dozen times while the container prints.
    script = (
        'trap "go=1" USR1; echo ready; while [ -z "$go" ]; do sleep 0.1; done; '
        f'i=0; while [ $i -lt 60000 ]; do i=$((i+1)); echo "line $i {"x" * 100}"; '
        # At most ~25,000 lines/s: the follower keeps up, so no file is rotated away before it is read.
        "[ $((i % 250)) = 0 ] && usleep 10000; done"
    )
    docker_id = run(testbed_hosts[0], app, script, log_options={"max-size": "1m", "max-file": "3"})
    source = Source(app_id=app.pk, docker_id=docker_id, process="web.0", process_type="web")
    client = docker.APIClient(base_url=testbed_hosts[0].engine_url, timeout=30)
    with Engine(fleet[0], timeout=None) as engine:
        batches = read(open_logs(engine, source, {}, follow=True), source, after={})
        assert [entry.text for entry in next(batches)] == ["ready"]  # followed from here on
        client.kill(docker_id, signal="USR1")
        entries = [entry for batch in batches for entry in batch]
    client.close()
    numbers = [entry.text.split(" ")[1] for entry in entries]
    assert numbers == [str(i) for i in range(1, 60_001)]
    assert all(a.ns < b.ns for a, b in itertools.pairwise(entries))


def test_a_collector_killed_mid_stream_and_started_again_stores_every_line_once(collectors, app, testbed_hosts):
    first = collectors()
    script = (
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); [ $((i % 10)) = 0 ] && usleep 20000; done; sleep 600"
    )
    for index, host in enumerate(testbed_hosts[:2]):
        run(host, app, script, index=index)
    wait_for(lambda: 300 <= len(app_lines(app)) < 5000, timeout=30, interval=0.05)
    first.kill()
    stored_when_killed = len(app_lines(app))
    assert stored_when_killed < 6000  # killed mid-stream: lines were still coming
    second = collectors()
    wait_for(lambda: len(app_lines(app)) >= 6000, timeout=60)
    time.sleep(1)  # nothing more comes: no line stored twice by the second collector
    for index in range(2):
        texts = [line.text for line in app_lines(app) if line.process == f"web.{index}"]
        assert texts == [f"line {i}" for i in range(3000)]
    assert second.alive()


def test_a_container_prints_hostile_lines_and_the_collector_goes_on(collectors, app, testbed_hosts):
    collector = collectors()
    script = (
        "head -c 100000 /dev/zero | tr '\\0' x; echo;"  # Docker cuts it in 16 KiB parts; it is one line
        "printf 'bell\\007 escape\\033[31mred nul\\000 end\\n';"
        "printf '\\377\\376 not utf-8\\n';"
        "echo after; sleep 600"
    )
    run(testbed_hosts[0], app, script)
    wait_for(lambda: any(line.text == "after" for line in app_lines(app)), timeout=30)
    huge, control, binary, after = app_lines(app)
    assert len(huge.text) < MAX_LINE_CHARS + 100
    assert huge.text == "x" * MAX_LINE_CHARS + f" [line cut: {100_000 - MAX_LINE_CHARS} more characters]"
    assert control.text == "bell\\x07 escape\\x1b[31mred nul\\x00 end"
    assert binary.text == "\ufffd\ufffd not utf-8"  # json-file keeps text: bytes that are not UTF-8 become U+FFFD
    assert after.text == "after"
    assert collector.alive()


def test_a_host_whose_engine_stops_is_said_lost_and_its_lines_follow_when_it_is_back(collectors, app, testbed_hosts):
    host = testbed_hosts[1]
    collectors()
    trap = "trap 'echo last words >&2; exit 0' TERM; echo first; while true; do sleep 0.1; done & wait"
    run(host, app, trap)
    wait_for(lambda: [line.text for line in app_lines(app, source="app")] == ["first"], timeout=30)
    hosts_script("stop-engine", str(host.index))
    try:
        said = wait_for(lambda: app_lines(app, source=BERTH, search="lost contact"), timeout=60)
        assert said[0].process == "logs"
        assert said[0].text.startswith(f"lost contact with host test-{host.name} at ")
        assert said[0].text.endswith("its lines will follow when it answers")
    finally:
        hosts_script("start-engine", str(host.index))
    # The container stopped with the engine; its last words are stored, once, whether they were read
    # before the engine went or after it answered again.
    wait_for(lambda: "last words" in [line.text for line in app_lines(app, source="app")], timeout=60)
    wait_for(lambda: app_lines(app, source=BERTH, search="is back"), timeout=30)
    run(host, app, "echo new container; sleep 600", index=1)
    wait_for(lambda: "new container" in [line.text for line in app_lines(app, source="app")], timeout=30)
    texts = [line.text for line in app_lines(app, source="app")]
    assert texts.count("first") == texts.count("last words") == 1


def test_a_host_that_loses_power_mid_stream_has_every_line_its_engine_kept_stored_once(collectors, app, testbed_hosts):
    host = testbed_hosts[1]
    collectors()
    docker_id = run(host, app, "i=0; while true; do echo tick $i; i=$((i+1)); usleep 20000; done")
    wait_for(lambda: len(app_lines(app, source="app")) >= 20, timeout=30)
    hosts_script("stop-engine", str(host.index), "--kill")
    try:
        wait_for(lambda: app_lines(app, source=BERTH, search="lost contact"), timeout=60)
    finally:
        hosts_script("start-engine", str(host.index))
    wait_for(lambda: app_lines(app, source=BERTH, search="is back"), timeout=30)
    kept = [text for _, text in docker_lines(host, docker_id)]  # what the engine wrote before the power went
    wait_for(lambda: [line.text for line in app_lines(app, source="app")] == kept, timeout=30)
    assert kept == [f"tick {i}" for i in range(len(kept))]


def test_collector_follows_only_berth_s_containers(collectors, app, testbed_hosts):
    collectors()
    client = docker.APIClient(base_url=testbed_hosts[0].engine_url, timeout=30)
    stranger = client.create_container("berth-test/web:v1", command=["sh", "-c", "echo not ours; sleep 600"])
    client.start(stranger["Id"])
    try:
        run(testbed_hosts[0], app, "echo ours; sleep 600")
        wait_for(lambda: [line.text for line in app_lines(app)] == ["ours"], timeout=30)
        assert store.cursor(stranger["Id"]) is None
    finally:
        client.remove_container(stranger["Id"], force=True)
        client.close()


SPEAKING_WEB = {
    "web": {
        **WEB["web"],
        "min_ready_s": 0.5,
        # Says hello, serves, and says goodbye on stderr when stopped.
        "command": [
            "sh",
            "-c",
            "echo hello from $BERTH_RELEASE; httpd -f -p $PORT -h /www & h=$!; "
            "trap 'echo goodbye from $BERTH_RELEASE >&2; kill $h; exit 0' TERM; wait $h",
        ],
    }
}


def test_a_replaced_container_keeps_its_last_lines_and_berth_says_what_it_did(fleet, tenant, testbed_hosts):
    """No collector runs: the flush before removal alone keeps what the old container printed."""
    app = AppFactory(organization=tenant.memberships.get().organization, name="chatty")
    store.client().delete(store.stream_key(app.pk))
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=SPEAKING_WEB)
    run_deployments(app)
    (first,) = live(app)
    # Docker keeps each container's output in rotated json files: it cannot fill a host's disk.
    inspected = docker.APIClient(base_url=first.host.engine_url).inspect_container(first.docker_id)
    assert inspected["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=SPEAKING_WEB)
    run_deployments(app)
    assert [c.release.version for c in live(app)] == [2]
    mine = [(line.stream, line.text) for line in app_lines(app, source="app")]
    assert mine.count(("stdout", "hello from v1")) == 1
    assert mine.count(("stderr", "goodbye from v1")) == 1
    assert ("stdout", "hello from v2") not in mine  # still running: the collector's to read
    berth = [(line.process, line.text) for line in app_lines(app, source=BERTH)]
    deploy_lines = [text for process, text in berth if process == "deploy"]
    assert any(text.startswith("Starting web.0 of v1 on ") for text in deploy_lines)
    assert any(text.startswith(f"Stopping {first.name}: ") for text in deploy_lines)
    assert ("router", f"web.0 ({first.name}) leaves the routes") in berth
    assert all(line.process_type in ("web", "") for line in app_lines(app, source=BERTH))
    store.client().delete(store.stream_key(app.pk))


def test_a_stopped_container_s_lines_are_stored_once_when_the_collector_and_the_flush_race(
    collectors, fleet, tenant, testbed_hosts
):
    app = AppFactory(organization=tenant.memberships.get().organization, name="racy")
    store.client().delete(store.stream_key(app.pk))
    collectors()
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=SPEAKING_WEB)
    run_deployments(app)
    (container,) = live(app)
    wait_for(lambda: app_lines(app, source="app"), timeout=30)
    stop_container(container, None, "the test stops it")
    texts = [line.text for line in app_lines(app, source="app")]
    assert texts == ["hello from v1", "goodbye from v1"]
    time.sleep(1)  # the collector, which saw the container end, stores nothing more
    assert [line.text for line in app_lines(app, source="app")] == texts
    store.client().delete(store.stream_key(app.pk))


def test_a_crash_and_a_scale_are_berth_lines(fleet, tenant, testbed_hosts):
    app = AppFactory(organization=tenant.memberships.get().organization, name="crashy")
    store.client().delete(store.stream_key(app.pk))
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=SPEAKING_WEB)
    run_deployments(app)
    (container,) = live(app)
    docker.APIClient(base_url=container.host.engine_url).kill(container.docker_id, signal="SIGKILL")

    def crash_seen():  # what the events watcher's reconcile would do
        observe_host(container.host, suspects=[container.docker_id])
        return app_lines(app, source=BERTH, search="exited")

    wait_for(crash_seen)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
    berth = [(line.process, line.text) for line in app_lines(app, source=BERTH)]
    assert ("crash", f"web.0 ({container.name}) exited with code 137") in berth
    assert any(process == "scale" and text.startswith("Scaled to web: 2 x small by ") for process, text in berth)
    store.client().delete(store.stream_key(app.pk))


def test_a_container_that_ends_in_the_middle_of_a_line_keeps_that_line(collectors, app, testbed_hosts):
    collectors()
    run(testbed_hosts[1], app, "echo first; printf 'no newline at the end'")
    wait_for(lambda: [line.text for line in app_lines(app)] == ["first", "no newline at the end"], timeout=30)


class OwnRedis:
    """A redis-server of this test's own, which it may kill: every write on disk before it is answered."""

    def __init__(self, directory) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
        ]
        command += ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=10, interval=0.05)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    with override_settings(BERTH_LOG_REDIS_URL=server.url):
        store.client.cache_clear()
        store._append_script.cache_clear()
        yield server
    server.kill()
    store.client.cache_clear()
    store._append_script.cache_clear()


def test_the_store_s_redis_dying_mid_stream_loses_no_line_and_doubles_none(own_redis, collectors, app, testbed_hosts):
    collector = collectors()
    script = (
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); [ $((i % 10)) = 0 ] && usleep 20000; done; sleep 600"
    )
    run(testbed_hosts[0], app, script)
    wait_for(lambda: len(app_lines(app)) >= 300, timeout=30, interval=0.05)
    own_redis.kill()
    time.sleep(2)  # the container goes on printing; the collector cannot store it meanwhile
    own_redis.start()
    wait_for(lambda: len(app_lines(app)) >= 3000, timeout=60)
    time.sleep(1)
    assert [line.text for line in app_lines(app)] == [f"line {i}" for i in range(3000)]
    assert collector.alive()
    assert "storing lines failed, trying again" in collector.output()


def test_containers_that_print_much_and_exit_at_once_have_every_line_stored(collectors, app, testbed_hosts):
    """Docker may end a follow when the container stops before it sent everything the container wrote
    (seen about once in five with 100,000 lines printed at once)."""
    collectors(BERTH_LOG_MAX_LINES="300000")
    for index, host in enumerate(testbed_hosts[:2]):
        run(host, app, f"seq 1 100000 | sed 's/^/{index} /'", index=index)

    def everything():
        return store.parsed(store.client().xrange(store.stream_key(app.pk)))

    wait_for(lambda: len(everything()) >= 200_000, timeout=120, interval=1)
    lines = everything()
    assert len(lines) == 200_000
    for index in range(2):
        assert [line.text for line in lines if line.process == f"web.{index}"] == [
            f"{index} {n}" for n in range(1, 100_001)
        ]
