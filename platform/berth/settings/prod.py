"""Production: refuses to start with development secrets; secure cookies and HTTPS headers."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import FIELD_ENCRYPTION_KEYS, INSECURE_FIELD_ENCRYPTION_KEYS, INSECURE_SECRET_KEY, SECRET_KEY
from .env import env_bool

if not SECRET_KEY or SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("BERTH_SECRET_KEY must be set to a random value of at least 32 characters.")
if not FIELD_ENCRYPTION_KEYS or INSECURE_FIELD_ENCRYPTION_KEYS in FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("BERTH_FIELD_ENCRYPTION_KEYS must be set to your own Fernet key(s).")

DEBUG = False
_https = env_bool("BERTH_HTTPS", True)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = env_bool("BERTH_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = 31536000 if _https else 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
