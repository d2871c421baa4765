"""Rows for the console's fleet and deployment pages, built with the models: no Docker engine is involved."""

from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext

from berth.applications.models import App, Release
from berth.applications.specs import ProcessType
from berth.deployments.models import Deployment
from tests.factories import AppFactory, ContainerFactory, SizeFactory


def release_of(app: App, **fields) -> Release:
    """The app's next release, as release_create would store it (the config snapshot is encrypted)."""
    version = (app.releases.aggregate(v=Max("version"))["v"] or 0) + 1
    fields = {"image": f"registry.test/{app.name}:{version}", "config": {}, **fields}
    return Release.objects.create(
        app=app, version=version, process_types={"web": ProcessType("web").as_json()}, **fields
    )


def container_on(host, *, release: Release | None = None, size=None, **fields):
    release = release or release_of(AppFactory())
    size = size or SizeFactory()
    return ContainerFactory(host=host, app=release.app, release=release, size=size, **fields)


def deployment_of(release: Release, **fields) -> Deployment:
    fields = {"kind": Deployment.Kind.RELEASE, **fields}
    return Deployment.objects.create(app=release.app, release=release, **fields)


def html_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def queries_for(client, path: str) -> int:
    client.get(path)  # the first request may warm the session and content types
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured)


def action(client, path: str, name: str, *objects):
    """Run a change list's admin action on objects, as the console's form posts it; follows the redirect."""
    data = {"action": name, "_selected_action": [obj.pk for obj in objects]}
    return client.post(path, data, follow=True)


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in response.context["messages"]]
