"""The Celery app, configured from Django settings (CELERY_* names): the one app of the control plane
and the worker. The control plane only sends tasks with it, by name (berth.core.queue); the worker
(worker/celery.py) adds its tasks, its consumer options and the beat schedule to this same app."""

from celery import Celery

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_expires=3600,
    timezone="UTC",
)
