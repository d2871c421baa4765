"""The events watcher's debounce: a burst of events is deferred, never dropped (pure timing logic)."""

import time

from tests.timing import wait_for
from worker.events import Waker


class Sends:
    def __init__(self):
        self.times: list[tuple[int, float]] = []
        self.suspects: list[list[str]] = []

    def __call__(self, host_id: int, suspects: list[str]) -> None:
        self.times.append((host_id, time.monotonic()))
        self.suspects.append(suspects)


def test_the_first_event_wakes_at_once():
    sends = Sends()
    began = time.monotonic()
    Waker(sends, debounce_s=0.5)(7)
    assert len(sends.times) == 1
    assert sends.times[0][0] == 7 and sends.times[0][1] - began < 0.1


def test_events_inside_the_window_are_sent_once_at_its_end():
    sends = Sends()
    waker = Waker(sends, debounce_s=0.3)
    waker(1, "a")
    waker(1, "b")  # e.g. `die` 40 ms after the event that woke the first pass
    waker(1, "c")
    waker(1, "b")
    assert len(sends.times) == 1
    wait_for(lambda: len(sends.times) >= 2, timeout=5, interval=0.02)
    assert len(sends.times) == 2, "the later events must cause a pass of their own"
    assert sends.times[1][1] - sends.times[0][1] >= 0.29
    assert sends.suspects == [["a"], ["b", "c"]]


def test_hosts_are_debounced_apart():
    sends = Sends()
    waker = Waker(sends, debounce_s=5)
    waker(1)
    waker(2)
    assert [host for host, _ in sends.times] == [1, 2]
