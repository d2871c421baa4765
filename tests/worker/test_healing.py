"""Crash back-off per slot and crash-loop detection, on rows as the worker writes them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from berth.applications.models import Formation, Release
from berth.deployments.models import Deployment
from berth.fleet.models import Container
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from worker import healing
from worker.healing import Crash, slot_wait_s

pytestmark = pytest.mark.django_db

WEB = {"web": {"command": [], "port": 8080, "health": {"type": "none", "command": []}}}


def test_a_slot_backs_off_by_its_own_streak():
    now = timezone.now()

    def crash(ago, ran):
        return Crash(healthy_at=now - timedelta(seconds=ago + ran), finished_at=now - timedelta(seconds=ago))

    assert slot_wait_s([], now) == 0
    assert slot_wait_s([crash(0, 2)], now) == 0  # a first crash: at once
    assert slot_wait_s([crash(0, 2), crash(5, 2)], now) == 1  # twice in a row: 1 s
    assert slot_wait_s([crash(0, 2), crash(5, 2), crash(9, 2)], now) == 2
    assert slot_wait_s([crash(0.5, 2), crash(5, 2), crash(9, 2)], now) == 1.5  # part of it already waited
    assert slot_wait_s([crash(0, 2), crash(5, 60), crash(70, 1)], now) == 1  # the one healthy for 60 s resets it


@pytest.fixture
def app():
    """An app whose v1 went live an hour ago and v2 a minute ago, with three web replicas of v2."""
    app = AppFactory()
    v1, v2 = (Release.objects.create(app=app, version=v, image="img", process_types=WEB, config={}) for v in (1, 2))
    size, host = SizeFactory(), HostFactory()
    Formation.objects.create(app=app, process_type="web", quantity=3, size=size)
    now = timezone.now()
    for release, ago in ((v1, 3600), (v2, 60)):
        Deployment.objects.create(
            app=app, release=release, kind="release", state="succeeded", finished_at=now - timedelta(seconds=ago)
        )
    app.current_release = v2
    app.save()
    for index in range(3):
        ContainerFactory(app=app, release=v2, size=size, host=host, index=index, started_at=now)
    return app


def crash(app, index: int, ago: float = 0.0, ran: float = 2.0) -> None:
    """The slot's container exits, and (unless it is the last of the test) a new one takes its place."""
    finished = timezone.now() - timedelta(seconds=ago)
    live = Container.objects.get(app=app, index=index, state="running")
    Container.objects.filter(pk=live.pk).update(
        state="exited", exit_code=1, healthy_at=finished - timedelta(seconds=ran), finished_at=finished
    )


def test_three_crashes_soon_after_going_live_roll_back_to_the_release_before(app):
    crash(app, 0)
    crash(app, 1)
    assert healing.crash_loop(app) is None  # two crashes; each slot's first, replaced at once
    ContainerFactory(app=app, release=app.current_release, size=SizeFactory(), host=HostFactory(), index=0)
    crash(app, 0)
    to, reason = healing.crash_loop(app)
    assert to.version == 1 and reason == "v2 crashed 3 times within 300 s of going live"

    deployment = healing.heal_app(app)
    v3 = deployment.release
    assert (deployment.kind, v3.version, v3.rollback_of, v3.author) == ("rollback", 3, 1, None)
    assert v3.description == "Automatic rollback to v1: v2 crashed 3 times within 300 s of going live"
    assert Release.objects.get(app=app, version=2).crash_looped_at is not None


def test_a_crash_that_back_off_would_leave_a_process_type_empty_rolls_back_at_once(app):
    Formation.objects.filter(app=app).update(quantity=1)
    Container.objects.filter(app=app, index__gt=0).update(state="removed")
    crash(app, 0, ago=1)
    assert healing.crash_loop(app) is None  # its first crash: replaced at once
    ContainerFactory(app=app, release=app.current_release, size=SizeFactory(), host=HostFactory(), index=0)
    crash(app, 0)  # again, after 2 s: 1 s of back-off with nothing serving
    to, reason = healing.crash_loop(app)
    assert to.version == 1 and "back-off would leave web with no healthy container" in reason


def test_a_release_live_for_longer_than_the_window_is_not_rolled_back(app):
    Deployment.objects.filter(release=app.current_release).update(finished_at=timezone.now() - timedelta(hours=1))
    for index in range(3):
        crash(app, index)
    assert healing.crash_loop(app) is None


def test_a_crash_of_a_slot_scaled_away_does_not_count_as_leaving_it_empty(app):
    Formation.objects.filter(app=app).update(quantity=0)
    Container.objects.filter(app=app).update(state="removed")
    Container.objects.filter(app=app, index=0).update(state="running")
    crash(app, 0, ran=1)
    ContainerFactory(app=app, release=app.current_release, size=SizeFactory(), host=HostFactory(), index=0)
    crash(app, 0, ran=1)
    assert healing.crash_loop(app) is None


def test_with_no_release_that_ran_stably_there_is_nothing_to_return_to(app):
    Release.objects.filter(app=app, version=1).update(crash_looped_at=timezone.now())
    for index in range(3):
        crash(app, index)
    assert healing.crash_loop(app) is None
