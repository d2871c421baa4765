"""Berth's own lines about an app (`berth[health]`, `berth[crash]`), said where Berth records what happened."""

from types import SimpleNamespace

import pytest

from berth.applications.models import Release
from berth.fleet import transitions
from berth.logs import store
from berth.logs.lines import BERTH
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.fleet import WEB


@pytest.fixture
def container(db):
    app = AppFactory()
    release = Release.objects.create(app=app, version=1, image="img", process_types=WEB, config={})
    container = ContainerFactory(
        app=app, release=release, size=SizeFactory(), host=HostFactory(), index=2, name="shop.store.web.2.v1.abc123"
    )
    store.client().delete(store.stream_key(container.app_id))
    yield container
    store.client().delete(store.stream_key(container.app_id))


def said(container) -> list[tuple[str, str, str]]:
    lines = store.recent(container.app_id, where=store.Filter(source=BERTH))
    return [(line.process, line.process_type, line.text) for line in lines]


def test_a_container_turning_unhealthy_is_said_once(container):
    assert not transitions.container_probed(container, healthy=False, retries=2)
    assert said(container) == []
    container.refresh_from_db()
    assert transitions.container_probed(container, healthy=False, retries=2)
    container.refresh_from_db()
    assert transitions.container_probed(container, healthy=False, retries=2)  # still unhealthy: not said again
    assert said(container) == [("health", "web", "web.2 (shop.store.web.2.v1.abc123) failed its health check 2 times")]


def test_an_exit_is_said_once_with_its_code_and_an_oom_kill(container):
    observed = SimpleNamespace(exit_code=137, oom_killed=True, finished_at=None, started_at=None)
    transitions.container_exited(container, observed)
    transitions.container_exited(container, observed)  # a second pass sees the same exit
    assert said(container) == [
        ("crash", "web", "web.2 (shop.store.web.2.v1.abc123) exited with code 137 (killed for running out of memory)")
    ]
