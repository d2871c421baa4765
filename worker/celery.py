"""The worker's side of Berth's one Celery app (berth.celery): its tasks, consumer options and beat schedule."""

import os
import sys
from datetime import timedelta
from pathlib import Path

from celery.signals import task_postrun, task_prerun

# The control plane's source root, as manage.py sets it (docs/conventions.md#layout).
_PLATFORM = str(Path(__file__).resolve().parents[1] / "platform")
if _PLATFORM not in sys.path:
    sys.path.insert(0, _PLATFORM)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.dev")

from django.conf import settings  # noqa: E402

from berth.celery import app  # noqa: E402
from berth.core import task_names  # noqa: E402

app.conf.update(
    # A task is acknowledged only once it finished: a worker killed mid-task leaves it queued again.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=300,
    task_time_limit=360,
    imports=["worker.tasks"],
    broker_connection_retry_on_startup=True,
    # No ETA or countdown may exceed this (docs/architecture.md#invariants): Redis would hand the task out twice.
    broker_transport_options={"visibility_timeout": 3600},
    beat_schedule={
        "purge-expired-invitations": {
            "task": task_names.PURGE_EXPIRED_INVITATIONS,
            "schedule": timedelta(hours=1),
        },
        "heartbeat": {"task": task_names.HEALTH, "schedule": timedelta(minutes=1)},
        "check-hosts": {"task": task_names.CHECK_HOSTS, "schedule": timedelta(seconds=5)},
        "probe-containers": {"task": task_names.PROBE, "schedule": timedelta(seconds=5)},
        "reconcile": {"task": task_names.RECONCILE, "schedule": timedelta(seconds=10)},
        "sync-routes": {
            "task": task_names.ROUTES_SYNC,
            "schedule": timedelta(seconds=settings.BERTH_ROUTE_SYNC_SECONDS),
        },
        "meter-usage": {"task": task_names.METER, "schedule": timedelta(seconds=30)},
        "invoices": {"task": task_names.INVOICES, "schedule": timedelta(minutes=10)},
        "sample-metrics": {
            "task": task_names.METRICS_SAMPLE,
            "schedule": timedelta(seconds=settings.BERTH_METRICS_SAMPLE_SECONDS),
        },
        "prune-metrics": {"task": task_names.METRICS_PRUNE, "schedule": timedelta(hours=1)},
    },
)


@task_prerun.connect
@task_postrun.connect
def _close_old_database_connections(**_: object) -> None:
    """Around each task, what Django does around each request: close a connection older than
    CONN_MAX_AGE or one that failed, and check the next one before use (settings: CELERY_DB_REUSE_MAX)."""
    from django.db import close_old_connections

    close_old_connections()
