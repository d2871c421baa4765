"""Time in tests: moments written out in UTC, and waiting for a condition instead of a fixed time.

A test that has to wait for something another thread, process or engine does polls for it with
`wait_for`, so it goes on as soon as the thing happened and fails with a message when it never does.
A fixed `time.sleep` stays only where the waiting is itself the behaviour under test (a timeout that
must run out, a delay between two requests); how fast Berth is belongs in benchmarks/, never in tests.
"""

import time
from datetime import UTC, datetime


def at(*args) -> datetime:
    """A moment in UTC: `at(2026, 11, 1, 12)` is noon UTC on 1 November 2026."""
    return datetime(*args, tzinfo=UTC)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    """Call `predicate` until it returns something true, and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {predicate}")
