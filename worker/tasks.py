"""Tasks. Each is thin: it takes ids, calls one service, and is safe to run twice."""

import logging

from celery import shared_task
from django.db import connection
from django.utils import timezone

from berth.tenancy.services import invitations_purge_expired

logger = logging.getLogger(__name__)


@shared_task(name="berth.tenancy.purge_expired_invitations")
def purge_expired_invitations() -> int:
    purged = invitations_purge_expired()
    logger.info("purged %d expired invitations", purged)
    return purged


@shared_task(name="berth.health", ignore_result=False)
def health() -> dict:
    """Proves a worker is consuming and can reach the database; `make run` and tests call it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (database_time,) = cursor.fetchone()
    return {"worker_time": timezone.now().isoformat(), "database_time": database_time.isoformat()}
