"""The one fixed-window counter in Redis that the API's throttles and the dashboard's sign-in share."""

import pytest

from berth.core.ratelimit import hit, parse_rate


@pytest.mark.parametrize(
    ("rate", "expected"), [("10/min", (10, 60)), ("1200/m", (1200, 60)), ("5/hour", (5, 3600)), ("3/day", (3, 86400))]
)
def test_rates_read_as_written_in_the_settings(rate, expected):
    assert parse_rate(rate) == expected


def test_hits_over_the_limit_are_refused_until_the_window_ends():
    results = [hit("test:ratelimit:one", 3, 86400) for _ in range(5)]
    assert [allowed for allowed, _ in results] == [True, True, True, False, False]
    assert all(0 < wait <= 86400 for _, wait in results)
    # Another key has its own count.
    assert hit("test:ratelimit:two", 3, 86400)[0]
