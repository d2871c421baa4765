"""Settings shared by every environment. Values that differ per deployment come from the environment."""

from pathlib import Path
from typing import Any

import dj_database_url

from berth.core import task_names

from .env import env_bool, env_int, env_list, env_str

REPO_ROOT = Path(__file__).resolve().parents[3]

# Development-only defaults. prod.py refuses to start while either is still in use.
INSECURE_SECRET_KEY = "insecure-berth-development-key-do-not-use-in-production"  # noqa: S105
INSECURE_FIELD_ENCRYPTION_KEYS = "wHt5TyCXHT1Mf1P8HlsO_NMrR9HF2q8yK3RIv58nKgE="

SECRET_KEY = env_str("BERTH_SECRET_KEY", INSECURE_SECRET_KEY)
# Fernet keys, newest first: the first encrypts, all of them decrypt, so keys can rotate.
FIELD_ENCRYPTION_KEYS = env_list("BERTH_FIELD_ENCRYPTION_KEYS", INSECURE_FIELD_ENCRYPTION_KEYS)
DEBUG = False
ALLOWED_HOSTS = env_list("BERTH_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("BERTH_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "berth.console.apps.ConsoleConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # the dashboard's times in words: naturaltime
    "django_htmx",
    "django_tables2",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "berth.core",
    "berth.tenancy",
    "berth.applications",
    "berth.audit",
    "berth.fleet",
    "berth.deployments",
    "berth.routing",
    "berth.billing",
    "berth.logs",
    "berth.metrics",
    "django.contrib.postgres",
    "berth.api",
    "berth.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "berth.api.middleware.ApiBodyLimitMiddleware",
    "berth.audit.context.AuditContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "berth.urls"
WSGI_APPLICATION = "berth.wsgi.application"
ASGI_APPLICATION = "berth.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_ROOT / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "berth.dashboard.context_processors.dashboard",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/berth"),
        conn_max_age=env_int("BERTH_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# The web process serves ASGI (berth/asgi.py sets BERTH_DB_POOL): Django runs each request's sync code in
# a thread of its own there, so a connection kept per thread would be a new one per request, never
# reused. A pool per process hands connections from request to request instead; each request returns its
# own when it ends (a live log tail as soon as it has checked who is asking, so tails hold none).
if env_bool("BERTH_DB_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("BERTH_DB_POOL_SIZE", 10),
        "timeout": 10,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("BERTH_CACHE_PREFIX", "berth"),
    }
}

AUTH_USER_MODEL = "tenancy.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "dashboard:signin"
LOGIN_REDIRECT_URL = "dashboard:home"
# Who may create an account on the dashboard: anyone ("open"), or only people with an invitation ("invite").
BERTH_SIGNUP = env_str("BERTH_SIGNUP", "invite")
# Sign-in attempts (and password-reset and sign-up requests) allowed per client address and per email, each.
BERTH_SIGNIN_RATE = env_str("BERTH_SIGNIN_RATE", "10/min")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT: Path | None = REPO_ROOT / "var" / "static"
STATICFILES_DIRS = [REPO_ROOT / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Request bodies: Django's own limit covers form posts; the API middleware applies the same
# number to JSON bodies, which Django does not count.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BERTH_MAX_BODY_BYTES", 256 * 1024)

# Number of reverse proxies in front of Berth whose X-Forwarded-For entries are trusted.
BERTH_NUM_PROXIES = env_int("BERTH_NUM_PROXIES", 0)
BERTH_INVITATION_TTL_DAYS = env_int("BERTH_INVITATION_TTL_DAYS", 7)
# Seconds between writes of ApiToken.last_used_at, so a busy token is not a write per request.
BERTH_TOKEN_TOUCH_INTERVAL = env_int("BERTH_TOKEN_TOUCH_INTERVAL", 60)

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "berth.api.authentication.BearerTokenAuthentication",
        "berth.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "berth.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "berth.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "berth.api.throttling.UserRateThrottle",
        "berth.api.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("BERTH_THROTTLE_USER", "1200/min"),
        "anon": env_str("BERTH_THROTTLE_ANON", "60/min"),
    },
    "NUM_PROXIES": BERTH_NUM_PROXIES,
    "PAGE_SIZE": 50,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Berth API",
    "DESCRIPTION": "Tenant REST API of Berth, a self-hosted platform-as-a-service.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "berth.tenancy.roles.Role.choices",
        "DeploymentStateEnum": "berth.api.schema.DEPLOYMENT_STATES",
        "ContainerStateEnum": "berth.api.schema.CONTAINER_STATES",
        "HostStateEnum": "berth.api.schema.HOST_STATES",
        "HostStatusEnum": "berth.api.schema.HOST_STATUSES",
        "InvoiceStateEnum": "berth.api.schema.INVOICE_STATES",
        "RouterStateEnum": "berth.api.schema.ROUTER_STATES",
        "RouterStatusEnum": "berth.api.schema.ROUTER_STATUSES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "berth.api.schema.add_error_responses",
    ],
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# Results only for the few tasks that report back (health); job state lives in PostgreSQL.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
# Celery's Django fix-up closes the worker's database connections before and after every task unless
# told to reuse them; a new PostgreSQL session per task cost ~7 ms on every deploy's way to its first
# container. Workers keep them as web processes do (worker.celery applies Django's rules, CONN_MAX_AGE
# and the health check, around each task); Celery itself still closes them every 1,000 tasks.
CELERY_DB_REUSE_MAX = 1000
# One-off runs wait hours for their container: they have a queue and workers of their own (Procfile `runs`),
# so runs never take the slots deployments, reconciles and billing need (docs/runs.md#workers).
BERTH_RUNS_QUEUE = env_str("BERTH_RUNS_QUEUE", "runs")
CELERY_TASK_ROUTES = {task_names.RUN: {"queue": BERTH_RUNS_QUEUE}}

EMAIL_BACKEND = env_str("BERTH_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("BERTH_FROM_EMAIL", "berth@localhost")
BERTH_PUBLIC_URL = env_str("BERTH_PUBLIC_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BERTH_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# The worker and the fleet.
# A running deployment whose worker has not written for this long is taken over by another.
BERTH_DEPLOYMENT_STALE_SECONDS = env_int("BERTH_DEPLOYMENT_STALE_SECONDS", 30)
# A host that has not answered a heartbeat for this long is marked down and its containers replaced.
BERTH_HOST_DOWN_AFTER_SECONDS = env_int("BERTH_HOST_DOWN_AFTER_SECONDS", 15)
# How long a new container must stay healthy before it replaces an old one and its deployment
# succeeds, unless its process type says otherwise (`min_ready_s`).
BERTH_MIN_READY_SECONDS = env_int("BERTH_MIN_READY_SECONDS", 5)
# A release whose containers crash this many times within this many seconds of it going live is
# rolled back to the last release that ran stably.
BERTH_CRASH_LOOP_CRASHES = env_int("BERTH_CRASH_LOOP_CRASHES", 3)
BERTH_CRASH_LOOP_SECONDS = env_int("BERTH_CRASH_LOOP_SECONDS", 300)
# A replica slot's crash back-off starts again once its container stayed healthy this long: a start
# that worked (the default is the default minimum ready time).
BERTH_BACKOFF_RESET_SECONDS = env_int("BERTH_BACKOFF_RESET_SECONDS", 5)
# How many new replicas one deployment starts at once (replacing old ones stays one at a time).
BERTH_PARALLEL_STARTS = env_int("BERTH_PARALLEL_STARTS", 8)
# An organization's containers on one host share one bridge network; a /24 from the engine's
# address pool has 253 addresses for them, less a margin.
BERTH_ORG_CONTAINERS_PER_HOST = env_int("BERTH_ORG_CONTAINERS_PER_HOST", 250)
# One-off runs and release commands (docs/runs.md): how long one may run unless it says, and at most. A run
# is killed when its time is up.
BERTH_RUN_TIMEOUT_SECONDS = env_int("BERTH_RUN_TIMEOUT_SECONDS", 30 * 60)
BERTH_RUN_MAX_TIMEOUT_SECONDS = env_int("BERTH_RUN_MAX_TIMEOUT_SECONDS", 6 * 3600)
# A running run whose worker has not written for this long is taken over by another (which waits for the
# same container, or finds it gone).
BERTH_RUN_STALE_SECONDS = env_int("BERTH_RUN_STALE_SECONDS", 60)
# How long registering a host waits for a worker to connect to its engine (the engine has 10 s of it).
BERTH_ENGINE_CHECK_TIMEOUT_SECONDS = env_int("BERTH_ENGINE_CHECK_TIMEOUT_SECONDS", 20)

# Routing (docs/routing.md). Every app answers at <app>.<org>.BERTH_APPS_DOMAIN on the routers; `localhost`
# works without DNS in browsers and curl (http://hello.demo.localhost:8080).
BERTH_APPS_DOMAIN = env_str("BERTH_APPS_DOMAIN", "localhost")
# The periodic pass that compares every router with the route table and repairs what differs.
BERTH_ROUTE_SYNC_SECONDS = env_int("BERTH_ROUTE_SYNC_SECONDS", 5)

# Logs (docs/logs.md): each app keeps about this many of its newest lines, none older than this.
BERTH_LOG_MAX_LINES = env_int("BERTH_LOG_MAX_LINES", 20_000)
BERTH_LOG_MAX_AGE_HOURS = env_int("BERTH_LOG_MAX_AGE_HOURS", 7 * 24)
# The Redis that keeps them; by default the one Berth already uses. Its own instance isolates their memory.
BERTH_LOG_REDIS_URL = env_str("BERTH_LOG_REDIS_URL", REDIS_URL)
# A live tail with nothing to send sends a comment this often, so proxies keep an idle stream open.
BERTH_LOG_HEARTBEAT_SECONDS = env_int("BERTH_LOG_HEARTBEAT_SECONDS", 15)

# Metrics (docs/metrics.md): how often the worker reads every running container and router, and how long
# the minute and the hour buckets are kept.
BERTH_METRICS_SAMPLE_SECONDS = env_int("BERTH_METRICS_SAMPLE_SECONDS", 15)
BERTH_METRICS_MINUTE_RETENTION_HOURS = env_int("BERTH_METRICS_MINUTE_RETENTION_HOURS", 48)
BERTH_METRICS_HOUR_RETENTION_DAYS = env_int("BERTH_METRICS_HOUR_RETENTION_DAYS", 90)

# Billing. Quotas every organization has unless an operator sets its own.
BERTH_DEFAULT_QUOTA = {
    "max_apps": env_int("BERTH_QUOTA_MAX_APPS", 50),
    "max_containers": env_int("BERTH_QUOTA_MAX_CONTAINERS", 50),
    "max_memory_mb": env_int("BERTH_QUOTA_MAX_MEMORY_MB", 16 * 1024),
}
