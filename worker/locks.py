"""PostgreSQL advisory locks that keep two workers off the same app or the same host.

They are session locks on the worker's own database connection, so a worker that dies releases
them at once; nothing has to expire.
"""

import contextlib
import time
from collections.abc import Iterator

from django.db import connection

# The first key of Berth's two-key advisory locks: keeps them apart from anyone else's.
APP = 0x6265  # one deployment of an app at a time
HOST = 0x6268  # one reconcile pass of a host at a time
ROUTER = 0x6272  # one push to a router at a time
METRICS = 0x626D  # one metrics sampling pass at a time


class Busy(Exception):
    """Another worker holds the lock."""


def _try(namespace: int, key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        return cursor.fetchone()[0]


@contextlib.contextmanager
def advisory_lock(namespace: int, key: int, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock inside the block; raise Busy if another worker still holds it after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while not _try(namespace, key):
        if time.monotonic() >= deadline:
            raise Busy(f"{namespace:#x}/{key}")
        time.sleep(0.05)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
