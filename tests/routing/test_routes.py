"""Every app answers at its own hostname through a real router (HAProxy, with Caddy for TLS), with the
routes pushed by the worker's code from PostgreSQL."""

import docker
import pytest

from berth.fleet.models import Container, Router
from berth.routing.hostnames import default_hostname
from tests.deployments.helpers import live
from tests.fleet import WEB
from worker.fleet_health import observe_host
from worker.haproxy import RuntimeAPI
from worker.routing import sync_routers

from .helpers import deploy_app

pytestmark = pytest.mark.docker


def test_an_app_answers_at_its_hostname_on_every_replica(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    hostname = default_hostname("hello", "shop")
    served = {router.get(hostname, "/cgi-bin/request").body.splitlines()[0] for _ in range(8)}
    replicas = {c.docker_id[:12] for c in live(app)}
    assert {line.split()[0].removeprefix("SERVED_BY=") for line in served} == replicas
    assert all(line.endswith("web v1") for line in served)


def test_requests_carry_forwarded_headers_and_a_request_id(fleet, router, tenant):
    deploy_app(tenant, "hello")
    hostname = default_hostname("hello", "shop")
    seen = dict(
        line.split("=", 1) for line in router.get(hostname, "/cgi-bin/request").body.splitlines()[1:] if "=" in line
    )
    assert seen["HTTP_X_FORWARDED_PROTO"] == "http"
    assert seen["HTTP_X_FORWARDED_HOST"] == hostname
    assert seen["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert len(seen["HTTP_X_REQUEST_ID"]) == 36  # a UUID
    kept = router.get(hostname, "/cgi-bin/request", headers={"X-Request-Id": "client-chosen-id-0123456789"})
    assert "HTTP_X_REQUEST_ID=client-chosen-id-0123456789" in kept.body


def test_https_through_the_routers_certificate_authority(fleet, router, tenant):
    deploy_app(tenant, "hello")
    hostname = default_hostname("hello", "shop")
    response = router.get(hostname, "/cgi-bin/request", https=True)
    assert response.status == 200
    assert "HTTP_X_FORWARDED_PROTO=https" in response.body
    assert f"HTTP_X_FORWARDED_HOST={hostname}" in response.body


def test_an_unknown_hostname_gets_berths_404_never_an_app(fleet, router, tenant):
    deploy_app(tenant, "hello")
    for hostname in ("nope.shop.localhost", "127.0.0.1", "hello.shop.localhost.evil.example", ""):
        response = router.get(hostname, "/")
        assert response.status == 404, hostname
        assert "No such app" in response.body
        assert "web v1" not in response.body


def test_a_process_type_that_takes_no_http_is_not_routed(fleet, router, tenant):
    types = {**WEB, "web": {**WEB["web"], "http": False}}
    deploy_app(tenant, "quiet", process_types=types)
    response = router.get(default_hostname("quiet", "shop"), "/")
    assert response.status == 503
    assert "no process serving HTTP" in response.body


def test_a_restarted_router_is_full_again_after_one_pass(fleet, router, tenant):
    deploy_app(tenant, "hello", quantity=2)
    hostname = default_hostname("hello", "shop")
    router.stop()
    router.start()
    assert router.get(hostname).status == 404  # a blank router knows no app
    sync_routers()
    assert router.get(hostname).status == 200
    assert Router.objects.get().status == Router.Status.UP


def test_a_router_that_does_not_answer_is_marked_down_and_caught_up(fleet, router, tenant):
    router.stop()
    app = deploy_app(tenant, "hello", quantity=1)
    assert app.deployments.get().state == "succeeded"  # routing never blocks a deploy
    steps = list(app.deployments.get().steps.values_list("message", flat=True))
    assert any("Routing is pending on router test-router" in s for s in steps), steps
    assert Router.objects.get().status == Router.Status.DOWN
    router.start()
    sync_routers()
    assert Router.objects.get().status == Router.Status.UP
    assert router.get(default_hostname("hello", "shop")).status == 200


def test_a_crashed_replica_leaves_the_routes_when_seen(fleet, router, tenant):
    app = deploy_app(tenant, "hello", quantity=2)
    victim = live(app)[0]
    docker.APIClient(base_url=next(h for h in fleet if h.pk == victim.host_id).engine_url).kill(victim.docker_id)
    hostname = default_hostname("hello", "shop")
    # Passive health: the router skips the dead replica at once, and retries a request that hit it.
    for _ in range(10):
        assert router.get(hostname, "/cgi-bin/request").status == 200
    observe_host(victim.host_id, suspects=[victim.docker_id])
    assert Container.objects.get(pk=victim.pk).state == Container.State.EXITED
    live_names = {s.name for s in _servers(router)}
    assert f"c{victim.pk}" not in live_names


def _servers(router):
    return RuntimeAPI(router.files.admin_url).servers()
