"""The test suite: the real PostgreSQL and Redis, fast password hashing, mail kept in memory."""

import os

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Static files come straight from the finders; there is nothing collected to serve.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Tests share one Redis with a developer's running Berth and with other test runs: keep each run's keys
# apart (rate-limit counters are the cache's only use; a run clears its own before each test).
CACHES["default"]["KEY_PREFIX"] = f"berth-test-{os.getpid()}"  # noqa: F405
# The suite makes many requests as one user; the throttle itself is tested with its own rates.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"user": "100000/min", "anon": "100000/min"}  # noqa: F405
CELERY_TASK_ALWAYS_EAGER = False
# Tasks the suite enqueues go to a queue of their own, so a developer's running worker never
# takes them; tests that need a worker start one on this queue.
CELERY_TASK_DEFAULT_QUEUE = f"berth-test-{os.getpid()}"
# Runs too: the suite's workers consume that one queue.
BERTH_RUNS_QUEUE = CELERY_TASK_DEFAULT_QUEUE
CELERY_TASK_ROUTES = {task_names.RUN: {"queue": BERTH_RUNS_QUEUE}}  # noqa: F405
BERTH_HOST_DOWN_AFTER_SECONDS = 2
BERTH_DEPLOYMENT_STALE_SECONDS = 5
# Every deploy of the suite waits this long per new container; tests of readiness set their own.
BERTH_MIN_READY_SECONDS = 1
BERTH_RUN_STALE_SECONDS = 5
