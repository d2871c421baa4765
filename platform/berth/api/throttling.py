"""The API's rate limits, per user and per anonymous client, counted in Redis by `core.ratelimit`."""

from django.conf import settings
from rest_framework import throttling

from berth.core.ratelimit import hit, parse_rate


class RedisFixedWindowThrottle(throttling.BaseThrottle):
    scope = ""

    def rate(self) -> tuple[int, int]:
        return parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope])

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.ident(request)
        if ident is None:
            return True
        limit, window = self.rate()
        allowed, self._wait = hit(f"throttle:{self.scope}:{ident}", limit, window)
        return allowed

    def wait(self) -> float:
        return self._wait


class UserRateThrottle(RedisFixedWindowThrottle):
    scope = "user"

    def ident(self, request):
        return str(request.user.pk) if request.user and request.user.is_authenticated else None


class AnonRateThrottle(RedisFixedWindowThrottle):
    scope = "anon"

    def ident(self, request):
        if request.user and request.user.is_authenticated:
            return None
        return self.get_ident(request)
