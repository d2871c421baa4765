"""Canary releases on real hosts through a real router (docs/deploys.md#canary-releases): the canary gets
its weight of the requests, promote and abort lose none under load, heals and scales keep it, and its
containers are billed. Each case prints what it measured. The refusals are in tests/deployments/test_canary_rules.py."""

import http.client
import threading
import time
from collections import Counter

import docker
import pytest
from django.db import connection

from berth.billing.models import UsageRecord
from berth.deployments.canary import canary_quantity
from berth.deployments.models import Canary, Deployment
from berth.deployments.selectors import app_state
from berth.deployments.services import (
    canary_abort,
    canary_create,
    canary_promote,
    canary_weight_set,
    formation_scale,
)
from berth.fleet.models import Container
from berth.routing.hostnames import default_hostname
from tests.deployments.helpers import live, run_deployments
from worker import fleet_health, healing
from worker.haproxy import RuntimeAPI

from .helpers import FAST_WEB, deploy_app
from .test_zero_downtime import carried, under_load

pytestmark = pytest.mark.docker

REQUESTS = 10_000
CLIENTS = 8
# The bound: over 10,000 requests, the canary's share is within 2 points of its weight.
TOLERANCE = 0.02


def start_canary(tenant, app, weight: int, image: str = "berth-test/web:v2"):
    _, deployment, canary = canary_create(actor=tenant, app=app, image=image, weight=weight, process_types=FAST_WEB)
    run_deployments(app)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    return canary


def replicas(app) -> Counter:
    """Live containers by (release image's tag, canary or not)."""
    return Counter((c.release.image.rsplit(":", 1)[1], c.canary) for c in live(app))


def shares(router, hostname: str, total: int = REQUESTS, clients: int = CLIENTS) -> tuple[Counter, list[str]]:
    """GET / `total` times over `clients` keep-alive connections: how many answers each release gave
    (the body is "web v1" or "web v2"), and any failure."""
    answers: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        mine: Counter = Counter()
        connection_ = router.connection(hostname, timeout=10)
        for _ in range(count):
            try:
                connection_.request("GET", "/", headers={"Host": hostname})
                response = connection_.getresponse()
                body = response.read().decode().strip()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(repr(error))
                connection_.close()
                connection_ = router.connection(hostname, timeout=10)
                continue
            if response.status != 200:
                with lock:
                    failures.append(f"HTTP {response.status}")
            mine[body] += 1
        connection_.close()
        with lock:
            answers.update(mine)

    threads = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return answers, failures


def live_weights(router, app) -> dict[str, int]:
    """The weight of each of the app's servers, as the router's HAProxy has it now."""
    names = {f"c{c.pk}": c.release.image.rsplit(":", 1)[1] for c in live(app)}
    servers = RuntimeAPI(router.files.admin_url).servers()
    return {f"{names[s.name]}/{s.name}": s.weight for s in servers if s.name in names}


@pytest.mark.parametrize(("weight", "quantity"), [(10, 3), (25, 2), (50, 2)])
def test_the_canary_gets_its_weight_of_10000_requests(fleet, router, tenant, weight, quantity):
    app = deploy_app(tenant, "hello", quantity=quantity)
    start_canary(tenant, app, weight)
    canaries = canary_quantity(quantity, weight)
    assert replicas(app) == {("v1", False): quantity, ("v2", True): canaries}
    started = time.monotonic()
    answers, failures = shares(router, default_hostname("hello", "shop"))
    seconds = time.monotonic() - started
    share = answers["web v2"] / sum(answers.values())
    print(
        f"\ncanary at {weight}% beside {quantity} replicas ({canaries} canary): {answers['web v2']} of "
        f"{sum(answers.values())} requests = {share:.2%} in {seconds:.1f} s; router weights {live_weights(router, app)}"
    )
    assert failures == [] and sum(answers.values()) == REQUESTS
    assert set(answers) == {"web v1", "web v2"}
    assert abs(share - weight / 100) <= TOLERANCE


def test_promote_under_load_loses_no_request(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)
    canary = start_canary(tenant, app, 10)
    [adopted] = [c.pk for c in live(app) if c.canary]

    def promote():
        canary_promote(actor=tenant, app=app)
        run_deployments(app)

    carried(under_load(router, "hello", promote), "promote the canary v2 (10%) beside 3 replicas of v1")
    app.refresh_from_db()
    assert app.current_release.version == 2 and app_state(app)["canary"] is None
    assert replicas(app) == {("v2", False): 3}
    assert adopted in {c.pk for c in live(app)}  # the canary's replica became the release's, not replaced
    canary.refresh_from_db()
    assert canary.state == Canary.State.PROMOTED
    promotion = app.deployments.get(kind=Deployment.Kind.PROMOTE)
    assert promotion.state == Deployment.State.SUCCEEDED
    assert any("become replicas of the release" in s.message for s in promotion.steps.all())


def test_abort_under_load_loses_no_request(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    start_canary(tenant, app, 50)

    def abort():
        canary_abort(actor=tenant, app=app)
        run_deployments(app)

    load = under_load(router, "hello", abort)
    carried(load, "abort the canary v2 (50%) beside 2 replicas of v1")
    assert any(line.endswith("web v2") for line in load.report.served_by)  # it did serve before it went
    app.refresh_from_db()
    assert app.current_release.version == 1 and app_state(app)["canary"] is None
    assert replicas(app) == {("v1", False): 2}
    assert {u.weight for u in _upstreams(app)} == {100}  # the even weight again
    abort_ = app.deployments.get(kind=Deployment.Kind.ABORT)
    assert abort_.state == Deployment.State.SUCCEEDED
    assert any("the canary ended" in s.message for s in abort_.steps.all())


def _upstreams(app):
    from berth.routing.selectors import route_table

    [route] = route_table([app.pk])
    return route.upstreams


def kill(fleet, container) -> None:
    """docker kill a container and let Berth see it, as the events watcher would."""
    engine = docker.APIClient(base_url=next(h.engine_url for h in fleet if h.pk == container.host_id))
    engine.kill(container.docker_id)
    engine.close()
    time.sleep(0.3)
    fleet_health.observe_host(container.host_id, suspects=[container.docker_id])


def test_heals_keep_the_canary_and_a_crashed_canary_replica_is_replaced_as_one(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    start_canary(tenant, app, 50)
    [canary] = [c for c in live(app) if c.canary]

    healing.heal_apps([app.pk])  # nothing drifted: nothing to do, and the canary is not "another release"
    assert not app.deployments.filter(kind=Deployment.Kind.HEAL).exists()

    main = next(c for c in live(app) if not c.canary)
    kill(fleet, main)
    run_deployments(app)
    heal = app.deployments.filter(kind=Deployment.Kind.HEAL).latest("id")
    assert heal.state == Deployment.State.SUCCEEDED, heal.error
    assert canary.pk in {c.pk for c in live(app)}  # the heal of a release replica left the canary running
    assert replicas(app) == {("v1", False): 2, ("v2", True): 1}

    kill(fleet, canary)
    run_deployments(app)
    canary.refresh_from_db()
    assert canary.state == Container.State.EXITED
    [replacement] = [c for c in live(app) if c.canary]
    assert replacement.release.version == 2 and replacement.pk != canary.pk
    assert replicas(app) == {("v1", False): 2, ("v2", True): 1}
    healed = app.deployments.filter(kind=Deployment.Kind.HEAL).latest("id")
    assert healed.state == Deployment.State.SUCCEEDED and healed.release.version == 1  # the target is still v1
    assert any("canary web.0 of v2" in s.message for s in healed.steps.all())
    answers, failures = shares(router, default_hostname("hello", "shop"), total=400, clients=4)
    assert failures == [] and answers["web v2"] > 0  # the new canary replica serves


def test_a_scale_during_a_canary_keeps_it_and_its_replicas_are_billed(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    start_canary(tenant, app, 50)
    [first] = [c.pk for c in live(app) if c.canary]

    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 4}})
    run_deployments(app)
    assert replicas(app) == {("v1", False): 4, ("v2", True): 2}
    assert first in {c.pk for c in live(app) if c.canary}
    answers, failures = shares(router, default_hostname("hello", "shop"), total=2000, clients=4)
    print(f"\ncanary at 50% beside 4 replicas (2 canary): {answers['web v2'] / 2000:.2%} of 2000 requests")
    assert failures == [] and abs(answers["web v2"] / 2000 - 0.5) <= TOLERANCE

    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 1}})
    run_deployments(app)
    assert replicas(app) == {("v1", False): 1, ("v2", True): 1}

    # Billed like any container: each canary replica has its usage records, open while it runs.
    canaries = list(Container.objects.filter(app=app, canary=True))
    records = UsageRecord.objects.filter(container__in=canaries)
    assert {r.container_id for r in records} == {c.pk for c in canaries}
    assert all(r.process_type == "web" and r.app_name == "hello" for r in records)
    running = next(c for c in canaries if c.is_live)
    assert records.filter(container=running, ended_at__isnull=True).exists()
    stopped = [c for c in canaries if not c.is_live]
    assert stopped and all(records.filter(container=c, ended_at__isnull=False).exists() for c in stopped)
    connection.close()


def test_a_new_weight_reaches_the_router_and_a_scale_queued_before_a_promotion_keeps_the_canary_for_it(
    fleet, router, tenant
):
    app = deploy_app(tenant, "hello", quantity=4)
    start_canary(tenant, app, 10)
    [canary] = [c.pk for c in live(app) if c.canary]

    canary_weight_set(actor=tenant, app=app, weight=25)  # still one canary replica: only the weights change
    run_deployments(app)
    assert replicas(app) == {("v1", False): 4, ("v2", True): 1} and canary in {c.pk for c in live(app)}
    answers, failures = shares(router, default_hostname("hello", "shop"), total=2000, clients=4)
    print(f"\ncanary moved from 10% to 25% beside 4 replicas: {answers['web v2'] / 2000:.2%} of 2000 requests")
    assert failures == [] and abs(answers["web v2"] / 2000 - 0.25) <= TOLERANCE

    # Both queued before the worker runs either: the scale (of v1) must not stop the canary the promotion adopts.
    scale = formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 3}})
    canary_promote(actor=tenant, app=app)
    run_deployments(app)
    scale.refresh_from_db()
    assert scale.state == Deployment.State.SUCCEEDED and scale.release.version == 1
    assert replicas(app) == {("v2", False): 3}
    assert canary in {c.pk for c in live(app)}
