"""Rate limits are counted atomically in the real Redis: concurrent requests never exceed the limit."""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from django.test import override_settings

from berth.api.throttling import UserRateThrottle


def test_concurrent_requests_never_pass_the_limit(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "25/h"}
    request = SimpleNamespace(user=SimpleNamespace(pk=987654, is_authenticated=True))
    with (
        override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}),
        ThreadPoolExecutor(max_workers=16) as pool,
    ):
        allowed = list(pool.map(lambda _: UserRateThrottle().allow_request(request, None), range(200)))
    assert allowed.count(True) == 25
    throttle = UserRateThrottle()
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        assert not throttle.allow_request(request, None)
    assert 0 < throttle.wait() <= 3600
