"""The rules on what routers serve: which hostnames a tenant may add to an app, and which admin endpoints
an operator may register a router with."""

import pytest

from berth.audit.models import AuditEvent
from berth.core.errors import Conflict, Invalid
from berth.fleet.models import Router
from berth.routing.models import Domain
from berth.routing.services import (
    admin_url_problem,
    domain_add,
    domain_remove,
    hostname_problem,
    router_register,
)
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory, UserFactory

GOOD_HOSTNAMES = [
    "www.example.com",
    "example.com",
    "a.b.c.d.example.co.uk",
    "xn--bcher-kva.example",  # an internationalized name, as DNS has it
    "my-shop.example.com",
    "1password.example.com",
    f"{'a' * 63}.example.com",
]
BAD_HOSTNAMES = [
    (None, "Give a hostname"),
    ("", "Give a hostname"),
    (42, "Give a hostname"),
    ("example.com:8080", "no scheme, port or path"),
    ("https://example.com", "no scheme, port or path"),
    ("example.com/shop", "no scheme, port or path"),
    ("[::1]", "no scheme, port or path"),
    ("*.example.com", "Wildcard"),
    ("example", "at least two labels"),
    ("localhost", "at least two labels"),
    ("-shop.example.com", "Each label"),
    ("shop-.example.com", "Each label"),
    ("sh_op.example.com", "Each label"),
    ("shop..example.com", "Each label"),
    ("bücher.example", "Each label"),
    ("shop example.com", "Each label"),
    (f"{'a' * 64}.example.com", "Each label"),
    (".".join(["abcdefghi"] * 26), "at most 253"),
    ("10.0.0.1", "not an IP address"),
    ("10.0.0.300", "not a number"),
]


@pytest.mark.parametrize("hostname", GOOD_HOSTNAMES)
def test_a_hostname_as_dns_has_it_is_accepted(hostname):
    assert hostname_problem(hostname) is None


@pytest.mark.parametrize(("hostname", "reason"), BAD_HOSTNAMES)
def test_a_hostname_that_is_not_one_is_refused_with_the_reason(hostname, reason):
    problem = hostname_problem(hostname)
    assert problem is not None and reason in problem


@pytest.fixture
def shop(db):
    owner = MembershipFactory(organization=OrganizationFactory(slug="shop"), role="owner").user
    return owner, AppFactory(organization=owner.memberships.get().organization, name="hello")


def refused(error_class, **kwargs):
    with pytest.raises(error_class) as raised:
        domain_add(**kwargs)
    return raised.value


def test_a_domain_is_added_as_lowercase_without_the_final_dot_and_audited(shop):
    owner, app = shop
    domain = domain_add(actor=owner, app=app, hostname="  WWW.Example.COM. ")
    assert domain.hostname == "www.example.com" and domain.app == app and domain.created_by == owner
    event = AuditEvent.objects.get(action="domain.add")
    assert event.changes == {"hostname": "www.example.com"}
    domain_remove(actor=owner, domain=domain)
    assert not Domain.objects.exists()
    assert AuditEvent.objects.filter(action="domain.remove").count() == 1


def test_an_invalid_hostname_is_a_400_naming_the_field(shop):
    owner, app = shop
    error = refused(Invalid, actor=owner, app=app, hostname="*.example.com")
    assert (error.field, error.code) == ("hostname", "invalid_hostname")


def test_a_hostname_belongs_to_one_app_in_the_whole_installation(shop):
    owner, app = shop
    domain_add(actor=owner, app=app, hostname="www.example.com")
    again = refused(Conflict, actor=owner, app=app, hostname="WWW.example.com")
    assert (again.field, again.code, again.message) == (
        "hostname",
        "hostname_taken",
        "This app has this hostname already.",
    )
    rival = MembershipFactory(organization=OrganizationFactory(slug="rival"), role="owner").user
    rival_app = AppFactory(organization=rival.memberships.get().organization, name="hello")
    taken = refused(Conflict, actor=rival, app=rival_app, hostname="www.example.com")
    assert (taken.code, taken.message) == ("hostname_taken", "Another app has this hostname.")
    assert Domain.objects.get().app == app


def test_names_under_the_apps_domain_are_berths(shop, settings):
    owner, app = shop
    settings.BERTH_APPS_DOMAIN = "apps.example.net"
    own = refused(Conflict, actor=owner, app=app, hostname="hello.shop.apps.example.net")
    assert own.field == "hostname" and "already" in own.message
    for hostname in ("hello.other.apps.example.net", "apps.example.net", "x.y.z.apps.example.net"):
        error = refused(Invalid, actor=owner, app=app, hostname=hostname)
        assert (error.field, error.code) == ("hostname", "reserved_hostname"), hostname
        assert "hello.shop.apps.example.net" in error.message
    assert domain_add(actor=owner, app=app, hostname="apps.example.net.evil.test")  # not under it


def test_the_hostnames_berth_itself_answers_at_are_not_an_apps(shop, settings):
    owner, app = shop
    settings.BERTH_PUBLIC_URL = "https://berth.example.org"
    settings.ALLOWED_HOSTS = ["*", "console.example.org", ".ops.example.org"]
    for hostname in ("berth.example.org", "console.example.org", "ops.example.org", "a.ops.example.org"):
        error = refused(Invalid, actor=owner, app=app, hostname=hostname)
        assert (error.field, error.code) == ("hostname", "reserved_hostname"), hostname
    assert domain_add(actor=owner, app=app, hostname="www.example.org")  # `*` reserves nothing


@pytest.mark.parametrize(
    "url",
    [
        "unix:///var/lib/berth/router/admin.sock",
        "tcp://127.0.0.1:9999",
        "tcp://127.8.9.10:9999",
        "tcp://localhost:9999",
        "tcp://[::1]:9999",
    ],
)
def test_an_admin_endpoint_only_this_machine_reaches_is_accepted(url):
    assert admin_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "Give the router's admin endpoint"),
        ("", "Give the router's admin endpoint"),
        ("tcp://10.0.0.1:9999", "must not listen beyond this machine"),
        ("tcp://0.0.0.0:9999", "must not listen beyond this machine"),
        ("tcp://[::]:9999", "must not listen beyond this machine"),
        ("tcp://router.example.com:9999", "must not listen beyond this machine"),
        ("tcp://localhost.example.com:9999", "must not listen beyond this machine"),
        ("tcp://127.0.0.1", "names an address and a port"),
        ("tcp://127.0.0.1:0", "names an address and a port"),
        ("tcp://127.0.0.1:99999", "names an address and a port"),
        ("unix://var/router/admin.sock", "absolute path"),
        ("unix:var/router/admin.sock", "absolute path"),
        ("http://127.0.0.1:9999", "unix:///path/admin.sock or tcp://127.0.0.1:PORT"),
        ("/var/lib/berth/router/admin.sock", "unix:///path/admin.sock or tcp://127.0.0.1:PORT"),
    ],
)
def test_an_admin_endpoint_others_could_reach_is_refused(url, reason):
    problem = admin_url_problem(url)
    assert problem is not None and reason in problem


def test_registering_a_router_with_a_remote_admin_endpoint_is_a_400_naming_the_field(db):
    operator = UserFactory(is_staff=True)
    with pytest.raises(Invalid) as raised:
        router_register(actor=operator, name="edge", admin_url="tcp://10.0.0.1:9999", public_address="10.0.0.1")
    assert (raised.value.field, raised.value.code) == ("admin_url", "invalid_admin_url")
    assert not Router.objects.exists()
