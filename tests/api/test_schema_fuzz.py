"""Schema-driven fuzzing: every operation Berth publishes at /api/schema, called by an organization's owner.

Schemathesis generates valid and invalid requests from the schema Berth serves and sends them to the WSGI app
in-process. Every answer must be free of 5xx and match what the schema documents for the operation: a listed
status code, a listed content type and a body that validates against the documented schema.

Each example runs in a savepoint that is rolled back afterwards, so every request sees the same organization
(one owner, one developer, one app, one pending invitation, a spare token) and a failure replays exactly.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from berth.tenancy.roles import Role
from berth.tenancy.services import api_token_create, invitation_create, organization_create
from tests.factories import AppFactory, MembershipFactory, UserFactory

ORG_SLUG = "fuzz-org"
APP_NAME = "fuzz-app"

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

CONFIG = schemathesis.Config.from_dict(
    {
        # A fixed seed and no example database: the same requests on every run and every machine.
        "seed": 20250611,
        "generation": {
            "max-examples": 30,
            "database": "none",
            # Every request carries the owner's real token; the access matrix tests covers missing and bad ones.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application(), config=CONFIG)


@dataclass
class World:
    """The rows every example starts from, and the ids path parameters are pointed at."""

    authorization: str
    ids: dict[str, list[int]]


# Hooks are called by Hypothesis while it draws a request, outside pytest's reach; the fixture leaves the
# current world here for them.
_current: dict[str, World] = {}


@pytest.fixture
def world(db) -> Iterator[World]:
    owner = UserFactory(email="owner@fuzz.test")
    organization = organization_create(actor=owner, slug=ORG_SLUG, name="Fuzz")
    developer = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    AppFactory(organization=organization, name=APP_NAME, created_by=owner)
    invitation, _ = invitation_create(actor=owner, organization=organization, email="new@fuzz.test", role=Role.VIEWER)
    spare_token, _ = api_token_create(actor=owner, name="spare")
    _, plaintext = api_token_create(actor=owner, name="fuzz")
    current = World(
        authorization=f"Bearer {plaintext}",
        ids={
            "/tokens/{id}/": [spare_token.pk],
            "/orgs/{org_slug}/members/{id}/": [owner.memberships.get().pk, developer.pk],
            "/orgs/{org_slug}/invitations/{id}/": [invitation.pk],
            "/orgs/{org_slug}/audit-events/{id}/": list(organization.audit_events.values_list("pk", flat=True)),
        },
    )
    _current["world"] = current
    yield current
    _current.clear()


@pytest.fixture
def in_process_requests():
    """Keep the test's transaction open across requests, as Django's test client does.

    Django closes a connection that is not in autocommit mode at the start and end of each request, and inside
    the test's transaction it never is.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict) -> st.SearchStrategy:
    """Point path parameters at rows that exist about half the time; fuzzed values alone only reach 404s."""
    if not path_parameters:
        return st.just(path_parameters)
    world = _current["world"]
    choices = {}
    for name, value in path_parameters.items():
        known = {"org_slug": [ORG_SLUG], "app_name": [APP_NAME]}.get(name)
        if name == "id":
            known = world.ids.get(context.operation.path.removeprefix("/api/v1"), [])
        choices[name] = st.sampled_from([value, *known]) if known else st.just(value)
    return st.fixed_dictionaries(choices)


@schema.parametrize()
# One `world` serves every example: each runs in a savepoint that is rolled back, so none sees another's rows.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_answers_as_its_schema_documents(case, world, in_process_requests):
    with transaction.atomic():
        case.call_and_validate(headers={"Authorization": world.authorization}, checks=CHECKS)
        transaction.set_rollback(True)
