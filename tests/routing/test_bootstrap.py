"""The router a new installation registers (`manage.py bootstrap`): `make run`'s on loopback ports, or the one
docker-compose.yml runs, described by the BERTH_ROUTER_* variables its services share."""

from django.conf import settings

from berth.fleet.models import Router
from berth.routing.bootstrap import local_router_ensure
from tests.factories import UserFactory


def test_make_runs_router_is_registered_once(db, monkeypatch):
    for name in (
        "BERTH_ROUTER_DIR",
        "BERTH_ROUTER_PUBLIC_ADDRESS",
        "BERTH_ROUTER_HTTP_PORT",
        "BERTH_ROUTER_HTTPS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    operator = UserFactory(is_staff=True)
    router = local_router_ensure(operator)
    assert router is not None
    assert (router.name, router.admin_url, router.public_address, router.http_port, router.https_port) == (
        "local",
        f"unix://{(settings.REPO_ROOT / 'var' / 'router' / 'admin.sock').resolve()}",
        "127.0.0.1",
        8080,
        8443,
    )
    assert local_router_ensure(operator) is None and Router.objects.count() == 1


def test_the_compose_router_is_registered_as_its_variables_say(db, monkeypatch):
    monkeypatch.setenv("BERTH_ROUTER_DIR", "/var/lib/berth/router")
    monkeypatch.setenv("BERTH_ROUTER_PUBLIC_ADDRESS", "203.0.113.7")
    monkeypatch.setenv("BERTH_ROUTER_HTTP_PORT", "80")
    monkeypatch.setenv("BERTH_ROUTER_HTTPS_PORT", "443")
    router = local_router_ensure(UserFactory(is_staff=True))
    assert router is not None
    assert (router.admin_url, router.public_address, router.http_port, router.https_port) == (
        "unix:///var/lib/berth/router/admin.sock",
        "203.0.113.7",
        80,
        443,
    )
