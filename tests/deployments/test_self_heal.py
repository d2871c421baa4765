"""Self-healing on real hosts: killed containers, unhealthy ones, lost hosts, drained hosts, orphans."""

import logging
import queue
import threading
import time
from datetime import timedelta

import docker
import pytest
from django.db import connection
from django.utils import timezone

from berth.deployments.models import Deployment
from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import Container, DockerHost
from berth.fleet.services import host_set_state
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import start_engine, stop_engine
from tests.timing import wait_for
from worker import events, healing, reconcile, tasks

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker


@pytest.fixture
def app(tenant, fleet):
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
    run_deployments(app)
    assert len(live(app)) == 2
    app.refresh_from_db()
    return app


def engine_of(container):
    return docker.APIClient(base_url=container.host.engine_url)


def heal(app):
    """What the events watcher and the periodic pass make the worker do: observe, heal, deploy."""
    for host in DockerHost.objects.filter(status=DockerHost.Status.UP):
        tasks.reconcile_host(host.pk)
    run_deployments(app)


def test_a_killed_container_is_replaced(app):
    victim = live(app)[0]
    client = engine_of(victim)
    client.kill(victim.docker_id)
    finished = client.inspect_container(victim.docker_id)["State"]["FinishedAt"]
    client.close()
    heal(app)
    victim.refresh_from_db()
    assert victim.state == Container.State.EXITED
    assert abs((victim.finished_at - reconcile_time(finished)).total_seconds()) < 1
    replacements = live(app)
    assert len(replacements) == 2 and victim.pk not in {c.pk for c in replacements}
    assert all(fetch(c)[0] == 200 for c in replacements)
    assert Deployment.objects.filter(app=app, kind=Deployment.Kind.HEAL, state="succeeded").count() == 1


def reconcile_time(docker_time: str):
    from worker.engine import parse_docker_time

    return parse_docker_time(docker_time)


def crashed_before(container, seconds_ago: float, ran_s: float = 1.0):
    """A row for an earlier container of the same slot that crashed `seconds_ago`, after running `ran_s`."""
    finished = timezone.now() - timedelta(seconds=seconds_ago)
    fields = {f.name: getattr(container, f.name) for f in Container._meta.fields if f.name not in {"id", "docker_id"}}
    return Container.objects.create(
        **fields
        | {
            "docker_id": f"gone-{time.monotonic_ns()}",
            "state": "exited",
            "started_at": finished - timedelta(seconds=ran_s),
            "healthy_at": finished - timedelta(seconds=ran_s),
            "finished_at": finished,
        }
    )


def test_crash_back_off_is_per_slot_and_a_new_release_resets_it(app):
    release = app.releases.get()
    first, second = sorted(live(app), key=lambda c: c.index)
    Container.objects.filter(pk=first.pk).update(state=Container.State.EXITED, finished_at=timezone.now())
    first.refresh_from_db()
    assert healing.app_drift(app) == 0.0  # a slot's first crash is replaced at once
    for _ in range(4):  # four more quick crashes of slot 0 in a row
        crashed_before(first, seconds_ago=0.0)
    wait = healing.app_drift(app)
    assert 7 < wait <= 8  # 5 crashes in a row: 2**3 = 8 s after the last
    assert healing.slots_backing_off(app, release).keys() == {("web", 0)}
    assert healing.heal_app(app) is None  # waits: slot 1 is fine

    # Slot 1 crashes once: it is replaced now, whatever slot 0 waits for.
    Container.objects.filter(pk=second.pk).update(state=Container.State.EXITED, finished_at=timezone.now())
    assert healing.app_drift(app) == 0.0
    heal = healing.heal_app(app)
    assert heal is not None
    run_deployments(app)
    heal.refresh_from_db()
    assert heal.state == "succeeded"
    assert [c.index for c in live(app)] == [1]  # slot 0 still backs off; slot 1 runs again
    assert heal.steps.filter(message__contains="web.0 waits out its crash back-off").exists()

    newer = release.__class__.objects.create(
        app=app, version=2, image=release.image, process_types=release.process_types, config={}
    )
    app.current_release = newer
    app.save()
    assert healing.app_drift(app) == 0.0  # no crash of v2 yet


def test_a_slot_whose_container_stayed_healthy_starts_its_back_off_again(app):
    container = live(app)[0]
    Container.objects.filter(pk=container.pk).update(
        state=Container.State.EXITED, finished_at=timezone.now(), healthy_at=timezone.now() - timedelta(seconds=60)
    )
    crashed_before(container, seconds_ago=61)  # quick crashes before the one that ran a minute
    crashed_before(container, seconds_ago=62)
    assert healing.app_drift(app) == 0.0
    assert healing.crash_backoff_s(30) == 60


def test_a_container_that_turns_unhealthy_is_replaced_start_first(app):
    sick = live(app)[0]
    client = engine_of(sick)
    client.exec_start(client.exec_create(sick.docker_id, ["touch", "/tmp/unhealthy"]))
    client.close()
    for _ in range(3):  # the health check's retries
        changed = reconcile.probe_host(sick.host)
    assert changed == {app.pk}
    sick.refresh_from_db()
    assert sick.health == Container.Health.UNHEALTHY
    healing.heal_app(app)
    run_deployments(app)
    sick.refresh_from_db()
    assert sick.state == Container.State.REMOVED
    assert [fetch(c)[0] for c in live(app)] == [200, 200]


def test_draining_a_host_moves_its_containers_without_downtime(app, fleet):
    drained = live(app)[0].host
    answers, stop = [], threading.Event()

    def keep_asking():
        try:
            while not stop.is_set():
                answers.extend(fetch(c)[0] for c in live(app))
        finally:
            connection.close()  # this thread's own database connection

    poller = threading.Thread(target=keep_asking)
    poller.start()
    try:
        host_set_state(actor=None, host=drained, state=DockerHost.State.DRAINING)
        healing.heal_app(app)
        run_deployments(app)
    finally:
        stop.set()
        poller.join()
    assert {c.host_id for c in live(app)} == {h.pk for h in fleet} - {drained.pk}
    assert len(live(app)) == 2
    assert answers and set(answers) == {200}


def test_containers_are_rebuilt_from_labels_and_orphans_removed(app, fleet, tenant):
    before = {c.docker_id for c in live(app)}
    Container.objects.filter(app=app).delete()  # the database forgot them
    orphan_app = AppFactory(organization=app.organization, name="orphan")
    release_create(actor=tenant, app=orphan_app, image="berth-test/web:v1", process_types=WEB)
    run_deployments(orphan_app)
    [orphan] = live(orphan_app)
    orphan_app.delete()  # its container is now an orphan on the host
    for host in fleet:
        reconcile.observe_host(host)
    assert {c.docker_id for c in live(app)} == before
    assert {(c.process_type, c.index) for c in live(app)} == {("web", 0), ("web", 1)}
    client = docker.APIClient(base_url=fleet[0].engine_url)
    others = docker.APIClient(base_url=fleet[1].engine_url)
    remaining = {c["Id"] for c in client.containers(all=True) + others.containers(all=True)}
    assert orphan.docker_id not in remaining
    client.close()
    others.close()


def test_a_pass_leaves_a_deployment_in_progress_its_containers(app, fleet):
    """A deployment writes a container's row just after the engine starts it, and removes a container
    before its row says so; a pass in those gaps must neither adopt nor lose the container."""
    starting, stopping = live(app)
    deployment = starting.deployment
    Container.objects.filter(pk=starting.pk).delete()  # started, row not written yet
    Container.objects.filter(pk=stopping.pk).update(state=Container.State.STOPPING)
    client = engine_of(stopping)
    client.remove_container(stopping.docker_id, force=True)  # removed, row not updated yet
    client.close()
    Deployment.objects.filter(pk=deployment.pk).update(state=Deployment.State.RUNNING)
    for host in fleet:
        reconcile.observe_host(host)
    assert not Container.objects.filter(docker_id=starting.docker_id).exists()
    assert Container.objects.get(pk=stopping.pk).state == Container.State.STOPPING
    client = engine_of(starting)
    assert client.inspect_container(starting.docker_id)["State"]["Running"]
    client.close()
    # Once the deployment is over (its worker died, say), a pass adopts the one and ends the other.
    Deployment.objects.filter(pk=deployment.pk).update(state=Deployment.State.FAILED)
    for host in fleet:
        reconcile.observe_host(host)
    assert Container.objects.get(docker_id=starting.docker_id).state == Container.State.RUNNING
    stopped = Container.objects.get(pk=stopping.pk)
    assert stopped.state == Container.State.REMOVED and stopped.finished_at == stopping.last_seen_at


def test_a_pass_finishes_a_stop_whose_worker_died(app, fleet):
    """A worker marked a row `stopping` and died before stopping its container: with no deployment
    of the app under way, a pass stops and removes it, with the host's own finish time."""
    interrupted = live(app)[0]
    Container.objects.filter(pk=interrupted.pk).update(state=Container.State.STOPPING)
    reconcile.observe_host(interrupted.host)
    stopped = Container.objects.get(pk=interrupted.pk)
    assert stopped.state == Container.State.REMOVED and stopped.removed_at is not None
    assert stopped.finished_at is not None and stopped.finished_at > stopped.started_at
    client = engine_of(interrupted)
    assert client.containers(all=True, filters={"id": interrupted.docker_id}) == []
    client.close()


@pytest.fixture
def restore_engines(testbed_hosts, fleet):
    """Engines stopped by the test start again before the fleet fixture cleans the hosts."""
    yield
    for host in testbed_hosts:
        start_engine(host.index)


@pytest.mark.usefixtures("restore_engines")
def test_a_lost_host_is_replaced_elsewhere_and_cleaned_when_it_returns(app, fleet, testbed_hosts):
    doomed = fleet[0]
    on_doomed = [c for c in live(app) if c.host_id == doomed.pk]
    assert on_doomed, "the app should have a replica on each host"
    seen = on_doomed[0].last_seen_at
    stop_engine(testbed_hosts[0].index, kill=True)
    DockerHost.objects.filter(pk=doomed.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=5))
    tasks.check_hosts()
    doomed.refresh_from_db()
    assert doomed.status == DockerHost.Status.DOWN
    lost = Container.objects.get(pk=on_doomed[0].pk)
    assert lost.state == Container.State.LOST and lost.finished_at == seen
    run_deployments(app)
    assert {c.host_id for c in live(app)} == {fleet[1].pk}
    assert [fetch(c)[0] for c in live(app)] == [200, 200]
    start_engine(testbed_hosts[0].index)
    wait_for(lambda: reconcile.check_host(doomed))
    reconcile.observe_host(DockerHost.objects.get(pk=doomed.pk))
    client = docker.APIClient(base_url=doomed.engine_url)
    assert client.containers(all=True, filters={"label": "berth.managed"}) == []
    client.close()


def test_the_events_watcher_alone_gets_a_killed_container_replaced(app, fleet, caplog):
    """No periodic pass: the passes Docker's events wake see the kill and heal the app. Docker sends
    `die` before its container list says "exited", so a pass that trusted the list would miss it."""
    wakes: queue.Queue[tuple[int, list[str]]] = queue.Queue()
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="berth.events")
    watcher = threading.Thread(
        target=events.follow_fleet, args=(stop, lambda host_id, suspects: wakes.put((host_id, suspects))), daemon=True
    )
    watcher.start()
    try:
        # Each host's follower logs this once its engine has answered the events request.
        streaming = {f"following the events of {host.name}" for host in fleet}
        wait_for(lambda: streaming <= {record.getMessage() for record in caplog.records}, timeout=10, interval=0.05)
        victim = live(app)[0]
        client = engine_of(victim)
        client.kill(victim.docker_id)
        client.close()
        deadline = time.monotonic() + 10
        while victim.state != Container.State.EXITED:
            host_id, suspects = wakes.get(timeout=max(deadline - time.monotonic(), 0.01))
            tasks.reconcile_host(host_id, suspects=suspects)  # what the worker does when woken
            victim.refresh_from_db()
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert victim.docker_id in suspects
    assert Deployment.objects.filter(app=app, kind=Deployment.Kind.HEAL, state="queued").count() == 1
    run_deployments(app)
    assert len(live(app)) == 2 and all(fetch(c)[0] == 200 for c in live(app))
