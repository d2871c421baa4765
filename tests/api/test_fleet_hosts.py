"""Operators read each host's status and, when it is degraded or down, why; the schema says what each status means."""

import pytest

from berth.fleet.models import DockerHost
from tests.conftest import token_client
from tests.factories import HostFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_degraded_host_is_shown_with_the_reason(client):
    reason = "10.250.6.2 does not answer on published ports 32768: No route to host"
    cut = HostFactory(name="cut", status=DockerHost.Status.DEGRADED, last_error=reason)
    operator = token_client(UserFactory(is_staff=True))

    body = operator.get(f"/api/v1/fleet/hosts/{cut.pk}/").json()

    assert (body["status"], body["last_error"]) == ("degraded", reason)
    [listed] = operator.get("/api/v1/fleet/hosts/").json()["results"]
    assert (listed["name"], listed["status"], listed["last_error"]) == ("cut", "degraded", reason)
    schema = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    status = schema["components"]["schemas"]["DockerHost"]["properties"]["status"]
    assert "degraded: the engine answers but the address does not" in status["description"]
