"""An operator cordons a host from the console's host list, in a real Chromium."""

import pytest
from playwright.sync_api import Page, expect

from berth.audit.models import AuditEvent
from berth.fleet.models import Container, DockerHost
from tests.console.rows import container_on
from tests.factories import PASSWORD, HostFactory, SizeFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_cordons_a_host_and_sees_its_state_change(page: Page, operator):
    edge = HostFactory(name="edge-1", memory_mb=1024)
    HostFactory(name="edge-2")
    container_on(edge, size=SizeFactory(name="medium", memory_mb=256), state=Container.State.RUNNING)

    page.goto("/console/fleet/dockerhost/")
    page.get_by_label("Email").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    row = page.locator("#result_list tbody tr", has_text="edge-1")
    expect(row).to_contain_text("Active")
    expect(row.locator(".field-capacity_used")).to_have_text("256 / 1024 MB (25%)")
    row.get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label="Cordon: place no new containers")
    page.get_by_role("button", name="Go").click()

    expect(page.locator(".messagelist")).to_contain_text("edge-1")
    expect(row.locator(".field-state")).to_have_text("Cordoned (no new containers)")
    expect(page.locator("#result_list tbody tr", has_text="edge-2").locator(".field-state")).to_have_text("Active")
    assert DockerHost.objects.get(name="edge-1").state == DockerHost.State.CORDONED
    event = AuditEvent.objects.get(action="host.cordoned")
    assert (event.actor, event.source, event.ip_address) == (operator, AuditEvent.Source.CONSOLE, "127.0.0.1")
