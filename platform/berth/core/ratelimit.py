"""Rate limits counted atomically in Redis: one fixed-window counter per key and window.

Counting with read-modify-write (DRF's own throttles keep a list of request times per client and write
it back whole) lets concurrent workers overwrite each other and let more through than the limit
(measured: 17% over at 20 clients, see benchmarks/results/api_list_apps.md). Here each window is one
Redis counter incremented with INCR, so every hit is counted exactly once. Windows are fixed: a client
can make at most twice the rate across a window boundary, never more than the rate within a window.
The API's throttles and the dashboard's sign-in both count here.
"""

import time
from typing import cast

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """A rate as written in the settings ("10/min", "1200/m", "5/hour") as (limit, window in seconds)."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0]]


def hit(key: str, limit: int, window: int) -> tuple[bool, float]:
    """Count one hit on `key` in the current window of `window` seconds.

    Returns whether this hit is within `limit`, and the seconds until the window ends (when a refused
    client may try again).
    """
    now = time.time()
    start = int(now // window) * window
    redis_key = cache.make_and_validate_key(f"{key}:{start}")
    # The counter needs Redis itself: the settings configure RedisCache as the default cache.
    client = cast(RedisCache, cache)._cache.get_client(redis_key, write=True)
    with client.pipeline() as pipe:
        pipe.incr(redis_key)
        pipe.expire(redis_key, window + 1)
        count, _ = pipe.execute()
    return count <= limit, start + window - now
