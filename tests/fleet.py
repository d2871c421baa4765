"""Fixtures for tests that run apps on the test bed's real Docker hosts (docs/architecture.md#the-test-bed)."""

import docker
import pytest
from django.conf import settings

from berth.fleet.models import DockerHost
from berth.tenancy.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory, SizeFactory
from tests.workers import RealWorker, forget_queue

WEB = {
    "web": {
        "port": 8080,
        "health_check": {
            "type": "http",
            "path": "/cgi-bin/health",
            "interval_s": 0.3,
            "retries": 3,
            "start_period_s": 3,
        },
    }
}


def remove_berth_containers(hosts) -> None:
    """Remove Berth's containers and networks from the test hosts (ids repeat from test to test)."""
    for host in hosts:
        client = docker.APIClient(base_url=host.engine_url, timeout=30)
        for container in client.containers(all=True, filters={"label": "berth.managed"}):
            client.remove_container(container["Id"], force=True)
        client.prune_networks(filters={"label": "berth.managed=true"})
        client.close()


@pytest.fixture
def fleet(testbed_hosts, transactional_db):
    """The test bed's hosts registered in Berth, up, with one default size; no Berth container left after."""
    remove_berth_containers(testbed_hosts)
    hosts = [
        DockerHost.objects.create(
            name=f"test-{h.name}",
            engine_url=h.engine_url,
            address=h.address,
            memory_mb=1024,
            cpu_millis=2000,
            status=DockerHost.Status.UP,
        )
        for h in testbed_hosts
    ]
    SizeFactory(name="small", memory_mb=64, cpu_millis=250, is_default=True)
    yield hosts
    remove_berth_containers(testbed_hosts)


@pytest.fixture
def userns_host(fleet, userns_testbed_host):
    """The test bed's host that remaps user namespaces, registered beside the fleet's hosts (or found among
    them), after a heartbeat of every host: Berth has detected which engines remap. Yields its row."""
    from worker.reconcile import check_host

    row = next((h for h in fleet if h.engine_url == userns_testbed_host.engine_url), None)
    if row is None:
        remove_berth_containers([userns_testbed_host])
        row = DockerHost.objects.create(
            name=f"test-{userns_testbed_host.name}",
            engine_url=userns_testbed_host.engine_url,
            address=userns_testbed_host.address,
            memory_mb=1024,
            cpu_millis=2000,
            status=DockerHost.Status.UP,
        )
    for host in DockerHost.objects.all():
        assert check_host(host), host.last_error
    row.refresh_from_db()
    yield row
    remove_berth_containers([userns_testbed_host])


@pytest.fixture
def tenant(transactional_db):
    """An owner in an organization, for deploying apps."""
    return MembershipFactory(organization=OrganizationFactory(slug="shop"), role=Role.OWNER).user


@pytest.fixture(scope="module")
def engine_checker(django_db_setup, tmp_path_factory):
    """A real worker on the test queue, which registering a host asks to connect to the engine.
    Yields it, so a test can read its log."""
    worker = RealWorker(settings.CELERY_TASK_DEFAULT_QUEUE, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        yield worker.start()
    finally:
        worker.stop()
        forget_queue(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture
def workers(tmp_path):
    """Real workers on the queue this test process enqueues to; all stopped and the queue emptied after.

    Earlier tests leave tasks on that queue (nobody consumed them): emptied first, so the worker
    starts with this test's work only."""
    forget_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
    started = []

    def start() -> RealWorker:
        worker = RealWorker(settings.CELERY_TASK_DEFAULT_QUEUE, tmp_path / "worker.log", pool="prefork")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
    forget_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
