"""ASGI entry point of the web process: `gunicorn berth.asgi -k uvicorn_worker.UvicornWorker` with platform/ on
the path (the Procfile, docker-compose.yml).

The web process is ASGI so that a live log tail waits in the event loop instead of holding a worker
(docs/logs.md#reading-logs); every other view is sync and runs in a thread, as Django does under ASGI.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.prod")
# Database connections come from a pool per process here (berth/settings/base.py says why).
os.environ.setdefault("BERTH_DB_POOL", "true")
application = get_asgi_application()

# Load the Celery app now, not during the first request that sends a task (berth/wsgi.py).
import berth.core.queue  # noqa: E402, F401
