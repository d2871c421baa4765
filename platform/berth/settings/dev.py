"""Local development: debug on, development keys allowed."""

from .base import *  # noqa: F403

DEBUG = True
# Static files come straight from the finders; there is nothing collected to serve.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
