"""Helpers for deploy tests: drive the worker's code in-process against the real hosts."""

import urllib.request

from berth.fleet.models import Container
from worker import deploy


def run_deployments(app) -> None:
    """Do what the worker's `berth.deployments.run` task does for an app."""
    deploy.run_app_deployments(app.pk)


def live(app):
    return list(Container.objects.filter(app=app, state__in=Container.LIVE).select_related("host", "release"))


def fetch(container, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
    url = f"http://{container.host.address}:{container.published_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
