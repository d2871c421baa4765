"""Rate limits kept in Redis (the default cache). Rates are read at request time, so settings apply live."""

from django.conf import settings
from rest_framework import throttling


class _SettingsRateMixin:
    def get_rate(self):
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]


class UserRateThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    pass


class AnonRateThrottle(_SettingsRateMixin, throttling.AnonRateThrottle):
    pass
