"""WSGI entry point for gunicorn: `gunicorn berth.wsgi` with platform/ on the path."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.prod")
application = get_wsgi_application()

# Load the Celery app's configuration now (about 0.4 s), not during the first request that sends a
# task, which would otherwise take that long. Its tasks are still never imported here (docs/architecture.md#invariants).
import worker.celery  # noqa: E402, F401
