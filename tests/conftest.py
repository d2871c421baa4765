"""Fixtures shared by the suite: people with each role in an organization, and API clients for them."""

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from berth.tenancy.roles import Role
from berth.tenancy.services import api_token_create

from .factories import MembershipFactory, OrganizationFactory, UserFactory

# Shared fixture modules: the test bed's hosts, and apps running on them.
pytest_plugins = ["tests.testbed", "tests.fleet", "tests.routers", "tests.web"]

# Fixtures that reach a Docker engine (the test bed's hosts, or a worker that connects to one), and those that
# drive a browser. A test that uses one, directly or through another fixture, gets the marker, so that
# `make test-fast` (`-m "not docker and not browser"`) never needs an engine or Chromium.
ENGINE_FIXTURES = {
    "testbed_hosts",
    "userns_testbed_host",
    "remote_engine",
    "fleet",
    "userns_host",
    "engine_checker",
    "router_process",
}
BROWSER_FIXTURES = {"browser", "page"}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & ENGINE_FIXTURES:
            item.add_marker(pytest.mark.docker)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    """Throttle counters live in the real Redis; each test starts with none.

    Only the test prefix's keys go: cache.clear() would flush the whole Redis database, broker
    queues of a running Berth included.
    """
    client = cache._cache.get_client(write=True)
    for key in client.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*"):
        client.delete(key)


@pytest.fixture
def organization(db):
    return OrganizationFactory(slug="acme", name="Acme")


@pytest.fixture
def members(organization):
    """One user per role in `organization`, keyed by role."""
    return {role: MembershipFactory(organization=organization, role=role).user for role in Role.values}


@pytest.fixture
def outsider(db):
    """A member of another organization, who must learn nothing about `organization`."""
    return MembershipFactory(organization=OrganizationFactory(slug="globex"), role=Role.OWNER).user


def token_client(user) -> APIClient:
    """An API client that authenticates like a real caller: with a personal bearer token."""
    _, plaintext = api_token_create(actor=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def client_for():
    return token_client


@pytest.fixture
def owner_client(members):
    return token_client(members[Role.OWNER])


@pytest.fixture
def user(db):
    return UserFactory()
