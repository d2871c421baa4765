"""Worker tasks: what they do to the database, the beat schedule, and a real worker answering over Redis."""

import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from berth.tenancy.models import Invitation
from berth.tenancy.roles import Role
from tests.factories import OrganizationFactory
from tests.timing import wait_for
from tests.workers import RealWorker, forget_queue
from worker import app
from worker.tasks import purge_expired_invitations

REPO_ROOT = Path(__file__).resolve().parents[2]


def invitation(organization, *, email: str, expires_in: timedelta, accepted: bool = False) -> Invitation:
    now = timezone.now()
    return Invitation.objects.create(
        organization=organization,
        email=email,
        role=Role.DEVELOPER,
        token_digest=hashlib.sha256(email.encode()).hexdigest(),
        created_at=now - timedelta(days=10),
        expires_at=now + expires_in,
        accepted_at=now - timedelta(days=9) if accepted else None,
    )


@pytest.mark.django_db
def test_purge_deletes_expired_unaccepted_invitations_and_keeps_the_rest():
    organization = OrganizationFactory()
    expired = invitation(organization, email="expired@example.test", expires_in=-timedelta(hours=1))
    pending = invitation(organization, email="pending@example.test", expires_in=timedelta(days=1))
    accepted = invitation(organization, email="accepted@example.test", expires_in=-timedelta(days=3), accepted=True)

    assert purge_expired_invitations() == 1

    assert set(Invitation.objects.values_list("pk", flat=True)) == {pending.pk, accepted.pk}
    assert not Invitation.objects.filter(pk=expired.pk).exists()


def test_beat_schedule_names_only_registered_tasks():
    app.loader.import_default_modules()  # what a worker imports at start-up (conf.imports)
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)


# --- A real worker process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_queue(django_db_setup, tmp_path_factory):
    """A real `celery worker` on a queue of its own (a developer's running worker cannot take its
    tasks), against the real Redis and pytest-django's test database. Yields the queue name."""
    queue = f"berth-test-{uuid.uuid4().hex[:12]}"
    worker = RealWorker(queue, tmp_path_factory.mktemp("worker") / "worker.log")
    # Stopped however the tests end, a failed start-up included.
    try:
        worker.start()
        yield queue
    finally:
        worker.stop()
        forget_queue(queue)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_answers_health_over_redis(worker_queue):
    result = app.send_task("berth.health", queue=worker_queue)
    try:
        answer = result.get(timeout=30)
    finally:
        result.forget()
    database_time = datetime.fromisoformat(answer["database_time"])
    assert abs(database_time - timezone.now()) < timedelta(minutes=5)
    assert datetime.fromisoformat(answer["worker_time"]).tzinfo is not None


def _health(queue: str) -> dict:
    result = app.send_task("berth.health", queue=queue)
    try:
        return result.get(timeout=30)
    finally:
        result.forget()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_keeps_its_database_connection_and_replaces_a_broken_one(worker_queue):
    """Tasks reuse the worker's PostgreSQL session (Celery's Django fix-up would open one per task),
    and a session the server ended is noticed before use and replaced, as in a web request."""
    sessions = {_health(worker_queue)["database_session"] for _ in range(4)}
    assert len(sessions) == 1, sessions
    [first] = sessions
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone() == (True,)
    replaced = {_health(worker_queue)["database_session"] for _ in range(2)}
    assert len(replaced) == 1 and first not in replaced, replaced


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_purges_invitations_in_the_test_database(worker_queue):
    """The worker sees rows this test committed: it runs against the same database, not a default one."""
    organization = OrganizationFactory()
    expired = invitation(organization, email="expired@example.test", expires_in=-timedelta(hours=1))
    pending = invitation(organization, email="pending@example.test", expires_in=timedelta(days=1))

    app.send_task("berth.tenancy.purge_expired_invitations", queue=worker_queue)

    def expired_invitation_purged():
        return not Invitation.objects.filter(pk=expired.pk).exists()

    wait_for(expired_invitation_purged, timeout=30, interval=0.1)
    assert Invitation.objects.filter(pk=pending.pk).exists()
