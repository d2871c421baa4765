"""Schema-driven fuzzing: every operation Berth publishes at /api/schema, called by an organization's owner.

Schemathesis generates valid and invalid requests from the schema Berth serves and sends them to the WSGI app
in-process. Every answer must be free of 5xx and match what the schema documents for the operation: a listed
status code, a listed content type and a body that validates against the documented schema.

Each request runs in a savepoint that is rolled back afterwards, so every request sees the same organization
(an owner, a developer, an app, a pending invitation, a spare token) and a failure replays exactly.
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

from berth.tenancy.roles import Role
from berth.tenancy.services import api_token_create, invitation_create, organization_create
from tests.factories import AppFactory, MembershipFactory, UserFactory

ORG_SLUG = "fuzz-org"
APP_NAME = "fuzz-app"
NAMES = {"org_slug": ORG_SLUG, "app_name": APP_NAME}

CONFIG = schemathesis.Config.from_dict(
    {
        # A fixed seed and no example database: Hypothesis draws alike on every run and every machine.
        "seed": 20250611,
        "generation": {
            "max-examples": 30,
            "database": "none",
            # Every request carries the owner's real token; test_access_matrix.py and test_tokens.py cover bad ones.
            "with-security-parameters": False,
        },
        # No 5xx, and the status code, content type and body the schema documents for the operation.
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
        "phases": {"stateful": {"enabled": False}},
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application(), config=CONFIG)


@dataclass
class World:
    """The rows every request starts from: the owner's credentials and what path parameters can address."""

    authorization: str
    ids: dict[str, list[int]]  # per operation path, the `{id}`s of real rows


# Schemathesis calls hooks while it builds requests, where fixtures cannot reach; the fixture leaves the world here.
_current: dict[str, World] = {}


@pytest.fixture
def world(db) -> Iterator[World]:
    owner = UserFactory(email="owner@fuzz.test")
    organization = organization_create(actor=owner, slug=ORG_SLUG, name="Fuzz")
    developer = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    AppFactory(organization=organization, name=APP_NAME, created_by=owner)
    invitation, _ = invitation_create(actor=owner, organization=organization, email="new@fuzz.test", role=Role.VIEWER)
    spare_token, _ = api_token_create(actor=owner, name="spare")  # the one DELETE /tokens/{id}/ may revoke
    _, plaintext = api_token_create(actor=owner, name="fuzz")
    ids = {
        "/api/v1/tokens/{id}/": [spare_token.pk],
        "/api/v1/orgs/{org_slug}/members/{id}/": [developer.pk, owner.memberships.get().pk],
        "/api/v1/orgs/{org_slug}/invitations/{id}/": [invitation.pk],
        "/api/v1/orgs/{org_slug}/audit-events/{id}/": list(organization.audit_events.values_list("pk", flat=True)),
    }
    _current["world"] = World(authorization=f"Bearer {plaintext}", ids=ids)
    yield _current["world"]
    _current.clear()


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Keep the test's transaction open across requests, as Django's test client does.

    At the start and end of every request Django closes a connection that is not in autocommit mode, and inside
    the test's transaction it never is.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.hook
def map_case(context, case):
    """A coverage case probes one parameter; unless it is a path parameter, name the real org and app.

    Coverage cases are built when pytest collects this module, before the world exists: they can name the org
    and the app, which have fixed names, but not rows by id.
    """
    meta = case.meta
    if meta is None or meta.phase.name != "coverage":
        return case
    probed = meta.phase.data.parameter if meta.phase.data.parameter_location == "path" else None
    for name, value in NAMES.items():
        if name in case.path_parameters and name != probed:
            case.path_parameters = {**case.path_parameters, name: value}
    return case


@schema.hook
def flatmap_case(context, case):
    """Each fuzzed path parameter addresses a real row about half the time; fuzzed values alone only reach 404s."""
    meta = case.meta
    if meta is None or meta.phase.name != "fuzzing" or not case.path_parameters:
        return st.just(case)
    ids = _current["world"].ids.get(case.operation.path, [])
    real = {**{name: [value] for name, value in NAMES.items()}, "id": ids}
    choices = {name: st.sampled_from([value, *real.get(name, [])]) for name, value in case.path_parameters.items()}

    def addressed(path_parameters: dict):
        case.path_parameters = path_parameters
        return case

    return st.fixed_dictionaries(choices).map(addressed)


@schema.parametrize()
# One world serves every request: each runs in a savepoint that is rolled back, so none sees another's rows.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_answers_as_its_schema_documents(case, world, in_process_requests):
    with transaction.atomic():
        case.call_and_validate(headers={"Authorization": world.authorization})
        transaction.set_rollback(True)
