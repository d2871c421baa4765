"""The routers in quick succession and in failure: changes that follow each other under load, pushes that
race, a router killed in the middle of a rollout, a deleted app, and a request that reaches a replica in
the instant it leaves. Each ends with the router holding exactly the route table."""

import os
import signal
import threading
from pathlib import Path

import docker
import pytest
from django.db import connection

from berth.applications.services import app_delete
from berth.deployments.models import Deployment
from berth.deployments.services import config_set, formation_scale, release_create
from berth.fleet.models import Container, Router
from berth.routing.hostnames import default_hostname
from berth.routing.selectors import route_table
from berth.routing.services import domain_add
from tests.deployments.helpers import live, run_deployments
from tests.timing import wait_for
from worker import routing, runtime
from worker.haproxy import RuntimeAPI

from .checks import assert_router_matches_table
from .helpers import FAST_WEB, deploy_app
from .load import Load
from .test_zero_downtime import carried

pytestmark = pytest.mark.docker


def in_thread(target, *args) -> threading.Thread:
    """Run `target` in a thread with its own database connection, closed when it ends."""

    def run():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_deploy_followed_at_once_by_a_scale_and_a_config_change_under_load(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    with Load(router, default_hostname("hello", "shop")) as load:
        release_create(actor=tenant, app=app, image="berth-test/web:v2", process_types=FAST_WEB)
        runner = in_thread(run_deployments, app)
        wait_for(lambda: app.deployments.filter(state=Deployment.State.RUNNING).exists(), interval=0.02)
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 3}})
        config_set(actor=tenant, app=app, values={"GREETING": "hello"})
        runner.join(120)
        run_deployments(app)  # whatever the runner had not claimed yet
    carried(load, "deploy v2, then at once scale 2 -> 3 and a config change")
    assert set(app.deployments.values_list("state", flat=True)) == {Deployment.State.SUCCEEDED}
    latest = app.releases.latest("version")
    assert latest.config == {"GREETING": "hello"} and latest.image == "berth-test/web:v2"
    assert [c.release_id for c in live(app)] == [latest.pk] * 3
    assert_router_matches_table(router)


def test_pushes_that_race_leave_the_router_exactly_as_the_table_says(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=3)
    other = deploy_app(tenant, "other")
    api = RuntimeAPI(router.files.admin_url)
    hosts_map, _ = api.map_paths()
    [route] = route_table([app.pk])
    for round_ in range(3):
        # Drift both ways each round: the router lost a server, and holds a hostname nobody has.
        lost = route.upstreams[round_].name
        api.run(
            [
                f"set server {route.backend}/{lost} state maint",
                f"del server {route.backend}/{lost}",
                f"add map {hosts_map} stale{round_}.example.com {route.backend}",
            ]
        )
        domain_add(actor=tenant, app=app, hostname=f"www{round_}.example.com")
        barrier = threading.Barrier(4)
        pushers = [
            in_thread(after_barrier, barrier, routing.push, [app.pk]),
            in_thread(after_barrier, barrier, routing.push, [app.pk]),
            in_thread(after_barrier, barrier, routing.push, [other.pk, app.pk]),
            in_thread(after_barrier, barrier, routing.sync_routers),
        ]
        for pusher in pushers:
            pusher.join(60)
        assert_router_matches_table(router)
        assert router.get(f"www{round_}.example.com").status == 200
        assert router.get(f"stale{round_}.example.com").status == 404


def after_barrier(barrier: threading.Barrier, push, *args) -> None:
    barrier.wait()
    push(*args)


def kill_haproxy(router) -> None:
    """SIGKILL HAProxy's master and its worker, as a crash or an OOM kill would: no graceful anything."""
    master = router.processes.pop("haproxy")
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    for pid in (master.pid, *map(int, children)):
        os.kill(pid, signal.SIGKILL)
    master.wait(10)
    wait_for(lambda: not router._answers(router.files.http_port), interval=0.05)


def test_a_router_killed_and_restarted_during_a_rolling_deploy(fleet, router, tenant, monkeypatch):
    app = deploy_app(tenant, "hello", quantity=3)
    joins = []
    real_join = routing.join

    def join_while_the_router_dies_and_comes_back(container, deployment=None):
        joins.append(container.pk)
        if len(joins) == 1:
            kill_haproxy(router)  # before the first new replica joins
        elif len(joins) == 2:
            router.start()  # back, empty, before the second: still marked down, so no push waits on it
        real_join(container, deployment)

    monkeypatch.setattr(routing, "join", join_while_the_router_dies_and_comes_back)
    release_create(actor=tenant, app=app, image="berth-test/web:v2", process_types=FAST_WEB)
    run_deployments(app)

    deployment = app.deployments.latest("id")
    assert deployment.state == Deployment.State.SUCCEEDED  # a router never blocks a deploy
    steps = list(deployment.steps.values_list("message", flat=True))
    assert sum("Routing is pending on router test-router" in s for s in steps) == 1, steps
    assert len(joins) == 3 and {c.release.image for c in live(app)} == {"berth-test/web:v2"}
    assert Router.objects.get().status == Router.Status.DOWN
    assert router.get(default_hostname("hello", "shop")).status == 404  # restarted empty

    routing.sync_routers()
    assert Router.objects.get().status == Router.Status.UP
    assert_router_matches_table(router)
    served = {router.get(default_hostname("hello", "shop"), "/cgi-bin/request").body.split()[0] for _ in range(9)}
    assert served == {f"SERVED_BY={c.docker_id[:12]}" for c in live(app)}


def engine_containers(fleet, app_id: int) -> list[str]:
    found = []
    for host in fleet:
        client = docker.APIClient(base_url=host.engine_url)
        found += [c["Id"] for c in client.containers(filters={"label": f"berth.app_id={app_id}"})]
        client.close()
    return found


def test_a_deleted_app_loses_its_hostnames_and_servers_on_the_next_pass(fleet, router, tenant):
    app = deploy_app(tenant, "gone", quantity=2)
    kept = deploy_app(tenant, "kept")
    domain_add(actor=tenant, app=app, hostname="gone.example.com")
    routing.push([app.pk])
    assert router.get("gone.example.com").status == 200
    app_id = app.pk

    app_delete(actor=tenant, app=app)
    # Its rows go with it; its containers run on until the reconcile the deletion asked for removes them
    # as orphans, so only the routers' pass keeps clients from them.
    assert not Container.objects.filter(app_id=app_id).exists()
    assert len(engine_containers(fleet, app_id)) == 2
    routing.sync_routers()
    for hostname in ("gone.example.com", default_hostname("gone", "shop")):
        response = router.get(hostname, "/cgi-bin/request")
        assert response.status == 404 and "No such app" in response.body, hostname
    assert router.get(default_hostname("kept", "shop")).status == 200
    assert_router_matches_table(router)
    assert {backend for backend, _ in _servers(router)} == {route_table([kept.pk])[0].backend}


def test_deleting_an_app_asks_the_worker_to_take_its_routes_away_at_once(fleet, router, tenant, workers):
    app = deploy_app(tenant, "gone")
    hostname = default_hostname("gone", "shop")
    workers()
    app_delete(actor=tenant, app=app)
    # No periodic pass runs here: only the pass the deletion asked for answers with the plain 404 (its
    # containers' removal alone would leave the hostname to a backend without servers: a 503).
    wait_for(lambda: router.get(hostname).status == 404)
    assert_router_matches_table(router)


def test_a_deleted_apps_slot_taken_by_the_next_app_before_any_pass(fleet, router, tenant):
    """The next app routed takes the lowest free slot, the deleted app's, while the router still sends the
    deleted app's hostname to its replica there: the new app's first push takes both away."""
    app = deploy_app(tenant, "gone")
    slot = app.route_slot.number
    app_delete(actor=tenant, app=app)
    fresh = deploy_app(tenant, "fresh")
    assert fresh.route_slot.number == slot
    assert router.get(default_hostname("gone", "shop")).status == 404
    [replica] = live(fresh)
    body = router.get(default_hostname("fresh", "shop"), "/cgi-bin/request").body
    assert body.startswith(f"SERVED_BY={replica.docker_id[:12]} ")
    assert_router_matches_table(router)


def _servers(router):
    return [(s.backend, s.name) for s in RuntimeAPI(router.files.admin_url).servers()]


def test_a_request_that_reaches_a_leaving_replica_after_its_sessions_were_read_finishes(
    fleet, router, tenant, monkeypatch
):
    """The push that takes a replica out reads its requests in flight, then puts it in maintenance: a
    request can reach it in between. The replica is stopped only once HAProxy agreed to delete it, which
    it does only when that request is done. A POST, which no router retries elsewhere."""
    app = deploy_app(tenant, "hello")
    [replica] = live(app)
    hostname = default_hostname("hello", "shop")
    answers, api = [], RuntimeAPI(router.files.admin_url)
    real_plan = routing.plan

    def plan_with_a_request_slipping_in(wanted, state, **kwargs):
        if not answers:
            answers.append(None)
            in_thread(lambda: answers.append(router.post(hostname, "/cgi-bin/request?sleep=1")))
            wait_for(lambda: any(api.sessions().values()), interval=0.01)
        return real_plan(wanted, state, **kwargs)

    monkeypatch.setattr(routing, "plan", plan_with_a_request_slipping_in)
    runtime.stop_container(replica, None, "the test stops it")
    wait_for(lambda: len(answers) == 2, timeout=5)  # the client has its answer (or failed)
    assert answers[1].status == 200 and answers[1].body.startswith(f"SERVED_BY={replica.docker_id[:12]} ")
    assert _servers(router) == []
