"""No request is lost while replicas come and go: continuous load on the app's URL through the router
(keep-alive clients that never retry, and a new connection per request) during each change that replaces
or removes a replica. Each case prints how many requests it carried."""

import threading
import time

import docker
import pytest

from berth.deployments.services import app_restart, formation_scale, release_create, release_rollback
from berth.fleet.models import DockerHost
from berth.fleet.services import host_set_state
from berth.routing.hostnames import default_hostname
from tests.deployments.helpers import live, run_deployments
from worker import fleet_health, healing

from .helpers import FAST_WEB, deploy_app
from .load import Load

pytestmark = pytest.mark.docker

# At least 50 requests a second: 4 keep-alive and 4 new-connection clients aim at 20 a second each.
MIN_RATE = 50


def carried(load: Load, case: str) -> None:
    report = load.report
    print(f"\n{case}: {report}")
    assert report.failures == [], f"{case}: {report}\n" + "\n".join(report.failures[:20])
    assert report.rate >= MIN_RATE, f"{case}: {report}"


def under_load(router, app_name: str, change, *, settle_s: float = 1.0, methods=("GET", "GET", "GET", "POST")) -> Load:
    """Run `change` while the app's URL is under load, with load before and after it."""
    with Load(router, default_hostname(app_name, "shop"), methods=methods) as load:
        time.sleep(settle_s)
        change()
        time.sleep(settle_s)
    return load


def test_rolling_deploy_of_three_replicas(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)

    def deploy_v2():
        release_create(actor=tenant, app=app, image="berth-test/web:v2", process_types=FAST_WEB)
        run_deployments(app)

    load = under_load(router, "hello", deploy_v2)
    carried(load, "rolling deploy v1 -> v2, 3 replicas")
    assert {c.release.image for c in live(app)} == {"berth-test/web:v2"}
    assert any(line.endswith("web v1") for line in load.report.served_by)
    assert any(line.endswith("web v2") for line in load.report.served_by)


def test_rollback(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)
    deploy_app(tenant, "hello", image="berth-test/web:v2")

    def rollback():
        release_rollback(actor=tenant, app=app, version=1)
        run_deployments(app)

    carried(under_load(router, "hello", rollback), "rollback v2 -> v1, 3 replicas")
    assert {c.release.image for c in live(app)} == {"berth-test/web:v1"}


def test_scale_in_from_three_to_one(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)

    def scale_in():
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 1}})
        run_deployments(app)

    carried(under_load(router, "hello", scale_in), "scale 3 -> 1")
    assert len(live(app)) == 1


def test_restart_of_every_replica(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)
    before = {c.pk for c in live(app)}

    def restart():
        app_restart(actor=tenant, app=app)
        run_deployments(app)

    carried(under_load(router, "hello", restart), "restart of 3 replicas")
    assert len(live(app)) == 3 and not before & {c.pk for c in live(app)}


def test_drain_of_the_host_holding_a_replica(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    host = DockerHost.objects.get(pk=live(app)[0].host_id)

    def drain():
        host_set_state(actor=tenant, host=host, state=DockerHost.State.DRAINING)
        healing.heal_apps([app.pk])
        run_deployments(app)

    carried(under_load(router, "hello", drain), f"drain of {host.name}")
    assert all(c.host_id != host.pk for c in live(app))
    assert len(live(app)) == 2


def test_docker_kill_of_a_replica(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)
    victim = live(app)[0]
    engine = docker.APIClient(base_url=next(h.engine_url for h in fleet if h.pk == victim.host_id))

    def kill_and_heal():
        engine.kill(victim.docker_id)
        time.sleep(0.5)  # the events stream's wake-up, in a real installation
        fleet_health.observe_host(victim.host_id, suspects=[victim.docker_id])
        run_deployments(app)

    # Idempotent requests only: a POST the killed process was handling may have taken effect, so neither
    # the router nor anyone else may send it again; its client gets a 502, as from any proxy. GETs, HEADs
    # and the like that hit the dead replica are retried on another one.
    load = under_load(router, "hello", kill_and_heal, methods=("GET", "HEAD"))
    carried(load, "docker kill of a replica, then its heal")
    assert len(live(app)) == 3 and victim.pk not in {c.pk for c in live(app)}


def test_slow_requests_finish_before_their_replica_stops(fleet, router, tenant):
    """Requests of 1.5 s in flight when a rollout begins: each replica is stopped only once idle. POSTs,
    which the router does not retry elsewhere: one cut short would fail."""
    app = deploy_app(tenant, "hello", quantity=2)
    failures, done = [], []

    def slow_client():
        for _ in range(6):
            response = router.post(default_hostname("hello", "shop"), "/cgi-bin/request?sleep=1.5")
            (done if response.status == 200 else failures).append(response.status)

    clients = [threading.Thread(target=slow_client) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    release_create(actor=tenant, app=app, image="berth-test/web:v2", process_types=FAST_WEB)
    run_deployments(app)
    for client in clients:
        client.join(60)
    assert failures == [] and len(done) == 24
    steps = list(app.deployments.latest("id").steps.values_list("message", flat=True))
    assert not any("still had requests in flight" in s for s in steps)
