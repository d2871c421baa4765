"""An app's page shows its releases, formation and config keys; no console page ever shows a config value."""

import pytest
from django.contrib import admin
from django.urls import reverse

from berth.applications.models import ConfigVar
from berth.audit.models import AuditEvent
from berth.deployments.services import config_set, release_create
from berth.fleet.models import Container
from tests.console.rows import container_on, html_of
from tests.factories import AppFactory, HostFactory, SizeFactory

pytestmark = pytest.mark.django_db

SECRETS = {"DATABASE_URL": "postgres://app:hunter2-db-password@db.internal/shop", "STRIPE_KEY": "sk_live_51Hx9secret"}


@pytest.fixture
def app(operator):
    """An app with two releases (the second made by a config change), a formation, a container and deployments."""
    SizeFactory(name="small", is_default=True)
    app = AppFactory(name="shop", organization__slug="acme")
    release_create(actor=operator, app=app, image="registry.test/shop:1", description="First")
    release, _ = config_set(actor=operator, app=app, values=SECRETS)
    container_on(HostFactory(name="edge-1"), release=release, name="acme-shop-web-0", state=Container.State.RUNNING)
    return app


def console_pages(app) -> list[str]:
    """Every change list of the console, and the page of each object the app's secrets could reach."""
    lists = [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry]
    objects = [app, *app.releases.all(), *app.deployments.all(), *app.containers.all(), app.organization]
    objects += list(AuditEvent.objects.filter(organization=app.organization))
    pages = [reverse(f"admin:{o._meta.app_label}_{o._meta.model_name}_change", args=[o.pk]) for o in objects]
    return [*lists, *pages, f"/console/applications/app/{app.pk}/history/", "/console/"]


def test_no_console_page_shows_a_config_value(operator_client, app):
    assert ConfigVar.objects.filter(app=app).count() == 2
    for path in console_pages(app):
        page = html_of(operator_client, path)
        for value in SECRETS.values():
            assert value not in page, path
        assert "hunter2" not in page, path


def test_an_apps_page_shows_its_releases_formation_and_config_keys(operator_client, app):
    page = html_of(operator_client, f"/console/applications/app/{app.pk}/change/")

    for text in ["DATABASE_URL", "STRIPE_KEY", "registry.test/shop:1", "Set DATABASE_URL, STRIPE_KEY", "First"]:
        assert text in page, text
    assert "shop web=1:small" in page
    assert "small (64 MB, 0.25 CPU)" in page
    release = app.releases.get(version=2)
    assert "DATABASE_URL, STRIPE_KEY" in html_of(operator_client, f"/console/applications/release/{release.pk}/change/")


def test_an_app_still_saves_with_its_read_only_inlines(operator_client, app):
    change = f"/console/applications/app/{app.pk}/change/"
    formsets = operator_client.get(change).context["inline_admin_formsets"]
    data = {"organization": app.organization_id, "name": app.name, "description": "Renamed shop"}
    for inline in formsets:
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": value for name, value in management.initial.items()})

    response = operator_client.post(change, data)

    assert response.status_code == 302
    app.refresh_from_db()
    assert app.description == "Renamed shop"
    assert app.releases.count() == 2
    assert app.config_vars.count() == 2
    assert app.formation.get().quantity == 1
