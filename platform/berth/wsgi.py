"""WSGI entry point for gunicorn: `gunicorn berth.wsgi` with platform/ on the path."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.prod")
application = get_wsgi_application()

# Load the Celery app now (about 0.4 s), not during the first request that sends a task, which would
# otherwise take that long. The worker's tasks are never imported here: they are sent by name
# (docs/architecture.md#invariants).
import berth.core.queue  # noqa: E402, F401
