"""Berth's worker: Celery tasks, reconcilers and (later) the only code that speaks to Docker engines."""

from .celery import app

__all__ = ["app"]
