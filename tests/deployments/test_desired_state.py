"""One desired state per app that every change builds on, through the API and a real worker, on the
test bed's engines: the defects that made Berth run something other than what the user asked."""

import threading
import time

import pytest
from django.db import connection

from berth.applications.models import Release
from berth.deployments.models import Deployment
from berth.fleet.models import Container, DockerHost
from tests.conftest import token_client
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.timing import wait_for
from worker import tasks

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker

NEVER_HEALTHY = {
    "web": {"port": 8080, "health_check": {"type": "tcp", "interval_s": 0.2, "retries": 2, "start_period_s": 1}}
}


def crash_web(min_ready_s: float) -> dict:
    """berth-test/crash:v1 answers health checks for CRASH_AFTER seconds (3 by default), then exits 3."""
    return {"web": {**WEB["web"], "min_ready_s": min_ready_s}}


@pytest.fixture
def app(tenant, fleet):
    return AppFactory(organization=tenant.memberships.get().organization, name="store")


@pytest.fixture
def api(tenant, app):
    client = token_client(tenant)
    client.base = f"/api/v1/orgs/{app.organization.slug}/apps/{app.name}"
    return client


def release(api, image, process_types=WEB):
    response = api.post(f"{api.base}/releases/", {"image": image, "process_types": process_types}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def all_finished(app):
    return not Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED).exists()


def answers(app) -> list[str]:
    return sorted(fetch(c)[1].strip() for c in live(app))


def test_a_scale_right_after_a_new_release_scales_the_new_release(api, app, workers):
    """Defect 1, the README's own example: POST a release, ~0.2 s later PATCH the formation."""
    workers()
    release(api, "berth-test/web:v1")
    wait_for(lambda: all_finished(app) and len(live(app)) == 1, timeout=60)

    release(api, "berth-test/web:v2")
    time.sleep(0.2)
    scaled = api.patch(f"{api.base}/formation/", {"formation": {"web": {"quantity": 3}}}, format="json")
    assert scaled.status_code == 202, scaled.json()
    state = api.get(f"{api.base}/").json()["state"]
    assert state["target_release"] == 2 and state["processes"]["web"]["quantity"] == 3

    wait_for(lambda: all_finished(app), timeout=90)
    scale = Deployment.objects.get(app=app, kind=Deployment.Kind.SCALE)
    assert scale.release.version == 2 and scale.state == Deployment.State.SUCCEEDED, scale.error
    assert answers(app) == ["web v2"] * 3
    state = api.get(f"{api.base}/").json()["state"]
    assert state == {
        "release": 2,
        "target_release": 2,
        "deploying": False,
        "processes": {"web": {"quantity": 3, "size": "small", "running": {"v2": 3}}},
        "canary": None,
    }


def test_a_config_change_after_a_failed_release_builds_on_the_release_that_runs(api, app):
    """Defect 2: v2 fails its health check; a config change then makes v3 from v1, not from v2."""
    release(api, "berth-test/web:v1")
    run_deployments(app)
    release(api, "berth-test/nobind:v1", NEVER_HEALTHY)
    run_deployments(app)
    assert Deployment.objects.get(app=app, release__version=2).state == Deployment.State.FAILED
    assert api.get(f"{api.base}/").json()["state"]["target_release"] == 1

    changed = api.patch(f"{api.base}/config/", {"config": {"APP_GREETING": "hello"}}, format="json")
    assert changed.status_code == 202, changed.json()
    run_deployments(app)
    v3 = Release.objects.get(app=app, version=3)
    assert v3.image == "berth-test/web:v1" and v3.process_types == Release.objects.get(app=app, version=1).process_types
    assert Deployment.objects.get(release=v3).state == Deployment.State.SUCCEEDED
    [container] = live(app)
    assert "APP_GREETING=hello" in fetch(container, "/cgi-bin/env")[1]


def test_changes_queued_behind_a_release_that_fails_apply_to_the_release_that_runs(api, app):
    """A scale accepted while v2 is queued applies to v2; when v2 fails, it applies to v1 instead, and
    the failure gives back nothing the scale asked for."""
    release(api, "berth-test/web:v1")
    run_deployments(app)
    release(api, "berth-test/nobind:v1", NEVER_HEALTHY)
    api.patch(f"{api.base}/formation/", {"formation": {"web": {"quantity": 2}}}, format="json")
    run_deployments(app)
    _, failed, scale = Deployment.objects.filter(app=app).order_by("id")
    assert failed.state == Deployment.State.FAILED
    assert scale.release.version == 1 and scale.state == Deployment.State.SUCCEEDED, scale.error
    assert scale.steps.filter(message="v2 failed: this change now applies to v1.").exists()
    assert answers(app) == ["web v1"] * 2


def test_a_release_that_crashes_within_its_ready_time_fails_and_the_old_one_serves_throughout(api, app):
    """Defect 3, first half: crash:v1 is healthy, then exits after 3 s, inside a 5 s ready time."""
    release(api, "berth-test/web:v1")
    run_deployments(app)
    [old] = live(app)
    seen, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            seen.append(fetch(old)[0])
            time.sleep(0.05)

    poller = threading.Thread(target=keep_asking)
    poller.start()
    try:
        release(api, "berth-test/crash:v1", crash_web(min_ready_s=5))
        run_deployments(app)
    finally:
        stop.set()
        poller.join()
    deployment = Deployment.objects.get(app=app, release__version=2)
    assert deployment.state == Deployment.State.FAILED
    assert "did not become ready" in deployment.error and "exited with code 3" in deployment.error
    assert live(app) == [Container.objects.get(pk=old.pk)]
    assert seen and set(seen) == {200}  # never a moment without the old release


def heal_until(app, predicate, timeout: float = 60):
    """Drive what beat's pass and the worker do: observe each host, heal, deploy."""

    def step():
        tasks.reconcile_fleet()  # also does what a heal scheduled after a back-off would
        run_deployments(app)
        return predicate()

    return wait_for(step, timeout=timeout, interval=0.3)


def test_a_release_that_crash_loops_after_going_live_is_rolled_back(api, app):
    """Defect 3, second half: with a 1 s ready time crash:v1 goes live, then exits every 3 s."""
    release(api, "berth-test/web:v1")
    run_deployments(app)
    release(api, "berth-test/crash:v1", crash_web(min_ready_s=1))
    run_deployments(app)
    v2 = Release.objects.get(app=app, version=2)
    assert Deployment.objects.get(release=v2).state == Deployment.State.SUCCEEDED

    rollback = heal_until(app, lambda: Release.objects.filter(app=app, version=3).first(), timeout=60)
    assert rollback.image == "berth-test/web:v1" and rollback.rollback_of == 1 and rollback.author is None
    assert rollback.description.startswith("Automatic rollback to v1: v2 crashed")
    heal_until(app, lambda: all_finished(app) and answers(app) == ["web v1"])
    v2.refresh_from_db()
    assert v2.crash_looped_at is not None
    exits = Container.objects.filter(app=app, release=v2, state=Container.State.EXITED)
    assert exits.exists() and set(exits.values_list("exit_code", flat=True)) == {3}
    # The release that crash-looped is never what a later automatic rollback returns to.
    from berth.deployments.selectors import stable_release

    app.refresh_from_db()
    assert stable_release(app).version == 1


def test_killing_one_replica_never_delays_healing_another(api, app, fleet):
    """Defect 4: crash back-off is per slot. Slot 0 crashes twice in a row (its second crash backs off
    1 s); a crash of slot 1 meanwhile is replaced at once, and slot 0 comes back after its back-off."""
    import docker

    release(api, "berth-test/web:v1")
    api.patch(f"{api.base}/formation/", {"formation": {"web": {"quantity": 3}}}, format="json")
    run_deployments(app)

    def kill(index):
        container = next(c for c in live(app) if c.index == index)
        client = docker.APIClient(base_url=container.host.engine_url)
        client.kill(container.docker_id)
        client.close()
        return container

    kill(0)
    heal_until(app, lambda: len(live(app)) == 3 and all_finished(app))
    kill(0)  # its second crash in a row: 1 s of back-off
    for host in DockerHost.objects.filter(status=DockerHost.Status.UP):
        tasks.reconcile_host(host.pk)
    killed_1 = kill(1)
    for host in DockerHost.objects.filter(status=DockerHost.Status.UP):
        tasks.reconcile_host(host.pk)
    run_deployments(app)
    # The heal that slot 1's crash started replaced slot 1 at once, and left slot 0 to its back-off.
    heal = Deployment.objects.get(app=app, kind=Deployment.Kind.HEAL, containers__index=1)
    assert heal.state == Deployment.State.SUCCEEDED
    assert heal.created_at > Container.objects.get(pk=killed_1.pk).finished_at
    assert heal.steps.filter(message__contains="web.0 waits out its crash back-off").exists()
    assert not heal.containers.filter(index=0).exists()
    heal_until(app, lambda: sorted(c.index for c in live(app)) == [0, 1, 2] and all_finished(app), timeout=20)
    connection.close()
