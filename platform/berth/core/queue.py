"""Sending work to the worker: the control plane names tasks, never imports them (docs/architecture.md#invariants)."""

from django.db import transaction


def enqueue_on_commit(task_name: str, *args) -> None:
    """Send the task once the current transaction commits, so the worker finds the rows it names."""

    def send():
        from worker.celery import app  # the Celery app's configuration only, not the tasks

        app.send_task(task_name, args=list(args))

    transaction.on_commit(send)
