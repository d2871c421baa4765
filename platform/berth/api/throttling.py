"""Rate limits counted atomically in Redis.

DRF's own throttles keep a list of request times per client and write it back whole, so
concurrent workers overwrite each other and let more through than the limit (measured: 17% over
at 20 clients, see benchmarks/results/api_list_apps.md). Here each window is one Redis counter
incremented with INCR, so every request is counted exactly once. Windows are fixed: a client can
make at most twice the rate across a window boundary, never more than the rate within a window.
"""

import time
from typing import cast

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling


class RedisFixedWindowThrottle(throttling.BaseThrottle):
    scope = ""

    def rate(self) -> tuple[int, int]:
        count, period = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope].split("/")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
        return int(count), seconds

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.ident(request)
        if ident is None:
            return True
        limit, window = self.rate()
        now = time.time()
        start = int(now // window) * window
        key = cache.make_and_validate_key(f"throttle:{self.scope}:{ident}:{start}")
        # The counter needs Redis itself: the settings configure RedisCache as the default cache.
        client = cast(RedisCache, cache)._cache.get_client(key, write=True)
        with client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window + 1)
            count, _ = pipe.execute()
        self._wait = start + window - now
        return count <= limit

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
