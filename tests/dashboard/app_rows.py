"""Rows of an app with a history, for the app overview's tests: releases, a formation, live and exited
containers on two hosts, and deployments with steps, some failed, by different people."""

import json
from datetime import timedelta
from html.parser import HTMLParser

from django.utils import timezone

from berth.applications.models import App, Formation, Release
from berth.applications.specs import parse_process_types
from berth.deployments.models import Deployment, DeploymentStep
from berth.fleet.models import Container, Size
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory, UserFactory
from tests.fleet import WEB


def stored(process_types: dict | None) -> dict:
    """Process types as a release made through the API stores them (JSON: lists, not tuples)."""
    return json.loads(json.dumps({name: spec.as_json() for name, spec in parse_process_types(process_types).items()}))


WEB_STORED = stored(WEB)
FAILURE = "web.0 did not become healthy within 30 s: the health check got 500"


def sizes() -> tuple[Size, Size]:
    return SizeFactory(name="small", memory_mb=64, is_default=True), SizeFactory(name="medium", memory_mb=256)


def app_running_v1(organization, author, name: str = "shop") -> App:
    """An app whose v1 (berth-test/web:v1, tests.fleet.WEB) runs, with a formation of one web."""
    small, _ = sizes()
    HostFactory(name="host-big", memory_mb=2048)  # a host every size fits on
    app = AppFactory(organization=organization, name=name)
    v1 = Release.objects.create(
        app=app,
        version=1,
        image="berth-test/web:v1",
        image_digest="sha256:" + "ab" * 32,
        process_types=WEB_STORED,
        config={},
        author=author,
        description="First light",
    )
    App.objects.filter(pk=app.pk).update(current_release=v1)
    Formation.objects.create(app=app, process_type="web", quantity=1, size=small)
    app.refresh_from_db()
    return app


def add_containers(app: App, count: int, *, exits_per_slot: int = 2) -> list[Container]:
    """`count` live web containers of the app's release on two hosts, and in each slot `exits_per_slot`
    containers of the same release that exited on their own earlier (its restarts)."""
    hosts = [HostFactory(), HostFactory()]
    small = Size.objects.get(name="small")
    now = timezone.now()
    start = Container.objects.filter(app=app, state__in=Container.LIVE).count()  # the next free slot
    live = []
    for i in range(start, start + count):
        for crash in range(exits_per_slot):
            ContainerFactory(
                app=app,
                host=hosts[i % 2],
                release=app.current_release,
                size=small,
                index=i,
                state=Container.State.EXITED,
                health=Container.Health.UNHEALTHY,
                exit_code=3,
                started_at=now - timedelta(minutes=30 - crash),
                finished_at=now - timedelta(minutes=20 - crash),
            )
        live.append(
            ContainerFactory(
                app=app,
                host=hosts[i % 2],
                release=app.current_release,
                size=small,
                index=i,
                published_port=32768 + i,
                started_at=now - timedelta(minutes=10),
            )
        )
    return live


def add_deployments(app: App, count: int, *, steps: int = 3) -> list[Deployment]:
    """`count` finished deployments of the app's release, each by a different person, every third one
    failed with its reason, each with `steps` steps."""
    made = []
    for i in range(count):
        failed = i % 3 == 2
        deployment = Deployment.objects.create(
            app=app,
            release=app.current_release,
            kind=Deployment.Kind.SCALE if i % 2 else Deployment.Kind.RELEASE,
            state=Deployment.State.FAILED if failed else Deployment.State.SUCCEEDED,
            created_by=UserFactory(),
            error=FAILURE if failed else "",
            finished_at=timezone.now(),
        )
        DeploymentStep.objects.bulk_create(
            DeploymentStep(deployment=deployment, message=f"Step {n} of deployment {deployment.pk}.")
            for n in range(steps)
        )
        made.append(deployment)
    return made


def add_pending_release(app: App, author, image: str = "berth-test/web:v2") -> Deployment:
    """v2 queued behind v1: the app is deploying, its target release v2."""
    version = app.releases.count() + 1
    release = Release.objects.create(
        app=app, version=version, image=image, process_types=WEB_STORED, config={}, author=author
    )
    deployment = Deployment.objects.create(
        app=app, release=release, kind=Deployment.Kind.RELEASE, created_by=author, previous_release=app.current_release
    )
    deployment.steps.create(message=f"Queued: new release to v{version}.")
    return deployment


class _Inputs(HTMLParser):
    """The named inputs, selects and textareas of the form with `action`, as the browser would post them."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.select, self.values = action, False, None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("action") == self.action
        elif not self.inside:
            return
        elif tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "checkbox"):
            self.values[attrs["name"]] = attrs.get("value") or ""
        elif tag == "input" and attrs.get("type") == "checkbox" and "checked" in attrs:
            self.values[attrs["name"]] = "on"
        elif tag == "select":
            self.select = attrs["name"]
            self.values.setdefault(self.select, "")
        elif tag == "option" and self.select and ("selected" in attrs):
            self.values[self.select] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_values(html: str, action: str) -> dict[str, str]:
    """What submitting the form with this action, untouched, would post."""
    parser = _Inputs(action)
    parser.feed(html)
    return parser.values
