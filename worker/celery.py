"""The Celery app, configured from Django settings (CELERY_* names)."""

import os
import sys
from datetime import timedelta
from pathlib import Path

from celery import Celery
from celery.signals import task_postrun, task_prerun

# The control plane's source root, as manage.py sets it (docs/conventions.md#layout).
_PLATFORM = str(Path(__file__).resolve().parents[1] / "platform")
if _PLATFORM not in sys.path:
    sys.path.insert(0, _PLATFORM)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.dev")

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A task is acknowledged only once it finished: a worker killed mid-task leaves it queued again.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=300,
    task_time_limit=360,
    task_ignore_result=True,
    result_expires=3600,
    imports=["worker.tasks"],
    broker_connection_retry_on_startup=True,
    # No ETA or countdown may exceed this (docs/architecture.md#invariants): Redis would hand the task out twice.
    broker_transport_options={"visibility_timeout": 3600},
    timezone="UTC",
    beat_schedule={
        "purge-expired-invitations": {
            "task": "berth.tenancy.purge_expired_invitations",
            "schedule": timedelta(hours=1),
        },
        "heartbeat": {"task": "berth.health", "schedule": timedelta(minutes=1)},
        "check-hosts": {"task": "berth.fleet.check_hosts", "schedule": timedelta(seconds=5)},
        "probe-containers": {"task": "berth.fleet.probe", "schedule": timedelta(seconds=5)},
        "reconcile": {"task": "berth.fleet.reconcile", "schedule": timedelta(seconds=10)},
        "meter-usage": {"task": "berth.billing.meter", "schedule": timedelta(seconds=30)},
        "invoices": {"task": "berth.billing.invoices", "schedule": timedelta(minutes=10)},
    },
)


@task_prerun.connect
@task_postrun.connect
def _close_old_database_connections(**_) -> None:
    """Around each task, what Django does around each request: close a connection older than
    CONN_MAX_AGE or one that failed, and check the next one before use (settings: CELERY_DB_REUSE_MAX)."""
    from django.db import close_old_connections

    close_old_connections()
