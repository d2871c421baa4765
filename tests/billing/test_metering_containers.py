"""Metering real containers on the test bed: the ledger agrees with Docker's own clock (issue 4).

Docker's times are read independently of Berth: StartedAt by inspecting the running container,
the end from the engine's own `die` event (Berth removes containers it stopped, so they cannot be
inspected afterwards).
"""

from datetime import UTC, datetime, timedelta

import docker
import pytest
from django.utils import timezone

from berth.billing.metering import usage_sync_all
from berth.billing.models import UsageRecord
from berth.deployments.services import formation_scale, release_create
from berth.fleet.models import Container, DockerHost
from tests.deployments.helpers import live, run_deployments
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.testbed import start_engine, stop_engine
from tests.timing import wait_for
from worker import reconcile, tasks
from worker.engine import parse_docker_time

pytestmark = pytest.mark.docker
SECOND = timedelta(seconds=1)


@pytest.fixture
def app(tenant, fleet):
    app = AppFactory(organization=tenant.memberships.get().organization, name="metered")
    release_create(actor=tenant, app=app, image="berth-test/web:v1", process_types=WEB)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
    run_deployments(app)
    return app


def docker_started_at(container) -> datetime:
    client = docker.APIClient(base_url=container.host.engine_url)
    started = parse_docker_time(client.inspect_container(container.docker_id)["State"]["StartedAt"])
    client.close()
    return started


def docker_died_at(container, since: datetime) -> datetime:
    client = docker.APIClient(base_url=container.host.engine_url)
    events = client.events(
        since=since,
        until=datetime.now(tz=UTC) + SECOND,
        decode=True,  # whole seconds
        filters={"container": container.docker_id, "event": "die"},
    )
    died = [datetime.fromtimestamp(e["timeNano"] / 1e9, tz=UTC) for e in events]
    client.close()
    assert len(died) == 1, died
    return died[0]


def engine_answers(engine_url: str) -> bool:
    try:
        client = docker.APIClient(base_url=engine_url, timeout=2)  # asks the engine for its API version
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except docker.errors.DockerException:
        return False
    finally:
        client.close()


def ledger_of(container) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(container=container).order_by("started_at"))


def test_stopped_containers_are_billed_from_docker_start_to_docker_stop(app, tenant):
    containers = live(app)
    started = {c.pk: docker_started_at(c) for c in containers}
    since = datetime.now(tz=UTC) - SECOND
    # Each container runs longer than the tolerance below, so a record of no length cannot pass for its run.
    wait_for(lambda: datetime.now(tz=UTC) - max(started.values()) > 1.5 * SECOND, timeout=5, interval=0.1)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 0}})
    run_deployments(app)
    for container in containers:
        [record] = ledger_of(container)
        died = docker_died_at(container, since)
        assert abs(record.started_at - started[container.pk]) < SECOND
        assert abs(record.ended_at - died) < SECOND
        # The sum of the container's records is its real running time.
        assert abs((record.ended_at - record.started_at) - (died - started[container.pk])) < SECOND


def test_a_crashed_container_is_billed_to_its_finish_and_events_twice_change_nothing(app, fleet):
    victim = live(app)[0]
    client = docker.APIClient(base_url=victim.host.engine_url)
    client.kill(victim.docker_id)
    finished = parse_docker_time(client.inspect_container(victim.docker_id)["State"]["FinishedAt"])
    client.close()
    for _ in range(2):  # the same events, processed twice
        for host in fleet:
            tasks.reconcile_host(host.pk)
    usage_sync_all(now=timezone.now())
    [record] = ledger_of(victim)
    assert abs(record.ended_at - finished) < SECOND
    assert UsageRecord.objects.filter(container=victim).count() == 1


@pytest.fixture
def restore_engines(testbed_hosts, fleet):
    """Engines stopped by the test start again before the fleet fixture cleans the hosts."""
    yield
    for host in testbed_hosts:
        start_engine(host.index)


@pytest.mark.usefixtures("restore_engines")
def test_a_lost_hosts_containers_are_billed_to_when_they_were_last_seen(app, fleet, testbed_hosts):
    doomed = fleet[0]
    for host in fleet:
        reconcile.observe_host(host)  # a periodic pass: every running container is seen now
    on_doomed = [c for c in live(app) if c.host_id == doomed.pk]
    seen = {c.pk: Container.objects.get(pk=c.pk).last_seen_at for c in on_doomed}
    stop_engine(testbed_hosts[0].index, kill=True)
    wait_for(lambda: not engine_answers(doomed.engine_url), timeout=10)
    DockerHost.objects.filter(pk=doomed.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=5))
    tasks.check_hosts()
    for container in on_doomed:
        [record] = ledger_of(container)
        assert record.ended_at == seen[container.pk]
    # Replacements on the other host are billed from their own start.
    run_deployments(app)
    for container in live(app):
        [record] = ledger_of(container)
        assert abs(record.started_at - docker_started_at(container)) < SECOND and record.ended_at is None
