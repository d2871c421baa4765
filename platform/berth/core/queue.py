"""Sending work to the worker. The control plane names tasks (berth.core.task_names); it never imports
their code (docs/architecture.md#invariants)."""

from celery.exceptions import TimeoutError as CeleryTimeout
from django.db import transaction

from berth.celery import app


class NoAnswer(Exception):
    """No worker answered a task in time."""


def enqueue(task_name: str, *args, countdown: float | None = None, **kwargs) -> None:
    """Send the task now (or `countdown` seconds from now), whatever the current transaction does."""
    app.send_task(task_name, args=list(args), kwargs=kwargs or None, countdown=countdown)


def enqueue_on_commit(task_name: str, *args, **kwargs) -> None:
    """Send the task once the current transaction commits, so the worker finds the rows it names."""
    transaction.on_commit(lambda: enqueue(task_name, *args, **kwargs))


def ask(task_name: str, *args, timeout: float):
    """Send the task and wait up to `timeout` seconds for its answer; NoAnswer if none came."""
    result = app.send_task(task_name, args=list(args))
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        raise NoAnswer(task_name) from None
    finally:
        result.forget()
