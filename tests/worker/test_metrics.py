"""The metrics pass against real engines and a real router: containers' CPU and memory read once each from
their engine, requests counted from HAProxy's counters after real traffic (docs/metrics.md)."""

import threading
import time

import docker
import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from berth.core import task_names
from berth.core.queue import enqueue
from berth.deployments.services import formation_scale
from berth.fleet.models import Container, DockerHost
from berth.metrics.models import HOUR, MINUTE, ContainerBucket, Reading, RouteBucket
from berth.metrics.selectors import app_metrics
from berth.routing.hostnames import default_hostname
from tests.deployments.helpers import live, run_deployments
from tests.routing.helpers import FAST_WEB, deploy_app
from tests.timing import wait_for
from worker import app as worker_app
from worker.metrics import sample
from worker.reconcile import observe_host
from worker.routing import sync_routers

pytestmark = pytest.mark.docker

MB = 1024 * 1024
# A process that keeps a core busy, as far as its size lets it (a quarter of one).
BURN = {"command": ["sh", "-c", "while :; do :; done"], "health_check": {"type": "none"}, "min_ready_s": 0.5}
# A web process whose /cgi-bin/health answers 500 (the image's switch), checked on / so it stays healthy.
FAILING = {
    "web": {
        **FAST_WEB["web"],
        "command": ["sh", "-c", "touch /tmp/unhealthy && exec /bin/serve"],
        "health_check": {**FAST_WEB["web"]["health_check"], "path": "/"},
    }
}


def points_by_process(app) -> dict[str, dict]:
    report = app_metrics(app=app, period="hour", now=timezone.now())
    return {process["process_type"]: process for process in report["processes"]}


def test_a_busy_container_uses_more_cpu_than_an_idle_one_and_memory_stays_under_its_limit(fleet, tenant):
    app = deploy_app(tenant, "busy", process_types={**FAST_WEB, "burn": BURN})
    formation_scale(actor=tenant, app=app, changes={"burn": {"quantity": 1}})
    run_deployments(app)
    assert {c.process_type for c in live(app)} == {"web", "burn"}
    assert sample(now=timezone.now()) == {"containers": 0, "routes": 0}  # first readings: counters only
    time.sleep(2)  # CPU is a difference between two readings: the time between them is what is measured
    assert sample(now=timezone.now())["containers"] == 2
    processes = points_by_process(app)
    burn, web = processes["burn"], processes["web"]
    for process in (burn, web):
        [point] = process["points"][-1:]
        assert process["cpu_limit_millis"] == 250
        assert process["memory_limit_bytes"] == 64 * MB
        assert 0 < point["memory_bytes"] <= point["memory_max_bytes"] < 64 * MB
    busy, idle = burn["points"][-1]["cpu_millis"], web["points"][-1]["cpu_millis"]
    # The loop runs as much as its quarter of a core allows (less on a machine busy with other work);
    # httpd waits for requests.
    assert busy > 50
    assert busy <= 250 * 1.1
    assert idle < 20
    assert busy > 10 * idle


def test_requests_through_the_router_are_counted_by_status_class(fleet, router, tenant):
    app = deploy_app(tenant, "counted", process_types=FAILING)
    hostname = default_hostname("counted", "shop")
    sample(now=timezone.now())
    assert not RouteBucket.objects.exists()  # a backend's first reading sets its counters only
    for _ in range(30):
        assert router.get(hostname, "/").status == 200
    for _ in range(10):
        assert router.get(hostname, "/cgi-bin/health").status == 500
    for _ in range(5):
        assert router.get(hostname, "/nothing-here").status == 404
    assert sample(now=timezone.now())["routes"] == 1
    requests = app_metrics(app=app, period="hour", now=timezone.now())["requests"]
    assert requests["requests"] == 45
    assert (requests["status_2xx"], requests["status_4xx"], requests["status_5xx"]) == (30, 5, 10)
    assert sum(point["requests"] for point in requests["points"]) == 45
    assert all(point["per_second"] == point["requests"] / 60 for point in requests["points"])
    assert all(point["response_ms"] is not None for point in requests["points"])
    # Nothing more happened: the next pass adds nothing.
    sample(now=timezone.now())
    assert app_metrics(app=app, period="hour", now=timezone.now())["requests"]["requests"] == 45


def test_another_apps_requests_are_not_counted(fleet, router, tenant):
    quiet = deploy_app(tenant, "quiet")
    busy = deploy_app(tenant, "loud")
    sample(now=timezone.now())
    for _ in range(12):
        assert router.get(default_hostname("loud", "shop"), "/").status == 200
    sample(now=timezone.now())
    assert app_metrics(app=busy, period="hour", now=timezone.now())["requests"]["requests"] == 12
    assert app_metrics(app=quiet, period="hour", now=timezone.now())["requests"]["requests"] == 0


def test_a_host_that_does_not_answer_leaves_the_others_sampled(fleet, tenant):
    app = deploy_app(tenant, "spread", quantity=2)
    [one, *_] = live(app)
    gone = DockerHost.objects.create(
        name="gone",
        engine_url="unix:///run/berth-testbed/nowhere/docker.sock",
        address="10.250.250.2",
        memory_mb=1024,
        cpu_millis=2000,
        status=DockerHost.Status.UP,
    )
    Container.objects.create(
        host=gone,
        docker_id="f" * 64,
        name="stranded",
        organization=app.organization,
        app=app,
        release=one.release,
        process_type="web",
        index=9,
        size=one.size,
        state=Container.State.RUNNING,
    )
    sample(now=timezone.now())
    assert sample(now=timezone.now())["containers"] == 2
    assert not Reading.objects.filter(key=f"container:{'f' * 64}").exists()
    assert set(ContainerBucket.objects.filter(app=app).values_list("index", flat=True)) == {
        c.index for c in live(app) if c.host != gone
    }


def test_a_restarted_router_counts_again_from_what_it_served_since(fleet, router, tenant):
    app = deploy_app(tenant, "steady")
    hostname = default_hostname("steady", "shop")
    sample(now=timezone.now())
    for _ in range(10):
        assert router.get(hostname, "/").status == 200
    sample(now=timezone.now())
    router.stop()
    router.start()
    sync_routers()  # a restarted router is empty until the next pass
    for _ in range(14):  # more than before the restart: the counters alone would not tell
        assert router.get(hostname, "/").status == 200
    sample(now=timezone.now())
    assert app_metrics(app=app, period="hour", now=timezone.now())["requests"]["requests"] == 24


def test_a_container_that_died_is_a_restart_of_its_slot(fleet, tenant):
    app = deploy_app(tenant, "fragile")
    [container] = live(app)
    engine = docker.APIClient(base_url=container.host.engine_url, timeout=30)
    engine.kill(container.docker_id)  # as if its process crashed
    engine.close()
    observe_host(container.host, suspects=[container.docker_id])
    container.refresh_from_db()
    assert container.state == Container.State.EXITED
    sample(now=timezone.now())
    [process] = app_metrics(app=app, period="hour", now=timezone.now())["processes"]
    assert process["name"] == f"web.{container.index}"
    assert process["restarts"] == 1
    assert sum(point["restarts"] for point in process["points"]) == 1
    sample(now=timezone.now())  # counted again by the next pass, never twice
    assert app_metrics(app=app, period="hour", now=timezone.now())["processes"][0]["restarts"] == 1


def test_the_beat_schedule_samples_and_prunes(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in worker_app.conf.beat_schedule.values()}
    assert schedule[task_names.METRICS_SAMPLE].total_seconds() == settings.BERTH_METRICS_SAMPLE_SECONDS
    assert schedule[task_names.METRICS_PRUNE].total_seconds() == 3600


def test_a_real_worker_runs_the_pass(fleet, tenant, workers):
    app = deploy_app(tenant, "sampled")
    workers()
    enqueue(task_names.METRICS_SAMPLE)
    wait_for(lambda: Reading.objects.filter(key__startswith="container:").exists())
    time.sleep(1)  # CPU is a difference between two readings: the time between them is what is measured
    enqueue(task_names.METRICS_SAMPLE)
    wait_for(lambda: ContainerBucket.objects.filter(app=app, samples__gt=0).exists())
    [process] = app_metrics(app=app, period="hour", now=timezone.now())["processes"]
    assert process["points"][-1]["memory_bytes"] > 0


def test_passes_started_together_never_count_a_reading_twice(fleet, tenant):
    """Beat and a slow worker can start passes that overlap: one runs, the others step aside."""
    app = deploy_app(tenant, "crowded", quantity=2)
    sample(now=timezone.now())
    results = []

    def one_pass() -> None:
        try:
            results.append(sample(now=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = [result for result in results if not result.get("skipped")]
    assert len(results) == 4
    assert ran
    recorded = ContainerBucket.objects.filter(app=app, step=MINUTE).aggregate(total=Sum("samples"))["total"]
    assert recorded == 2 * len(ran)  # each pass that ran added one figure per replica, no more
    hours = ContainerBucket.objects.filter(app=app, step=HOUR).aggregate(total=Sum("samples"))["total"]
    assert hours == recorded
