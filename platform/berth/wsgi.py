"""WSGI entry point for gunicorn: `gunicorn berth.wsgi` with platform/ on the path."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "berth.settings.prod")
application = get_wsgi_application()
