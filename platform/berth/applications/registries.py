"""Image registries: which registry an image comes from, and the organization's login to it.

A host pulls an image it lacks from the image's registry with the credential the app's organization
stored for that registry, or with none (issue: "Images come from the host's local store or a
registry (with optional credentials)"). The password is encrypted at rest and never leaves Berth
except in the pull request to the host's engine: not in the API, the audit log or a log line.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, When

from berth.audit.services import audit_record
from berth.core.errors import Invalid
from berth.tenancy.models import Organization, User

from .models import REGISTRY_HOST, RegistryCredential, Release

DOCKER_HUB = "docker.io"
# Docker names Docker Hub "docker.io"; references written with its old name mean the same registry.
_HUB_ALIASES = {"index.docker.io": DOCKER_HUB}
MAX_PASSWORD_LENGTH = 16 * 1024  # a registry token or a JSON service-account key, not a file


def registry_of(image: str) -> str:
    """The registry an image reference names, by Docker's rule: the first path component is a
    registry only if it contains "." or ":" or is "localhost"; otherwise the image is on Docker Hub."""
    first, slash, _ = image.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB
    registry = first.lower()
    return _HUB_ALIASES.get(registry, registry)


def normalize_registry(registry: str) -> str:
    """The registry as `registry_of` would name it, or Invalid for anything an image could not name."""
    registry = _HUB_ALIASES.get(registry.strip().lower(), registry.strip().lower())
    try:
        REGISTRY_HOST(registry)
    except ValidationError as error:
        raise Invalid(error.messages[0], field="registry", code="invalid_registry") from None
    return registry


def _validate_login(username: str, password: str) -> None:
    # Basic authentication joins them with ":" (RFC 7617), so a username cannot hold one.
    if not username or ":" in username or any(ord(c) < 32 for c in username):
        raise Invalid("Give a username without ':' or control characters.", field="username")
    if not password or "\x00" in password or len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"Give a password of 1 to {MAX_PASSWORD_LENGTH} characters.", field="password")


@transaction.atomic
def registry_credential_set(
    *, actor: User, organization: Organization, registry: str, username: str, password: str
) -> tuple[RegistryCredential, bool]:
    """Store the organization's login to `registry`, replacing any it had. Returns (credential, created)."""
    registry = normalize_registry(registry)
    _validate_login(username, password)
    credential, created = RegistryCredential.objects.update_or_create(
        organization=organization, registry=registry, defaults={"username": username, "password": password}
    )
    audit_record(
        actor=actor,
        action="registry_credential.create" if created else "registry_credential.replace",
        target=credential,
        organization=organization,
        # Never the password (docs/architecture.md#invariants): who, which registry, which username.
        changes={"registry": registry, "username": username},
    )
    return credential, created


@transaction.atomic
def registry_credential_delete(*, actor: User, credential: RegistryCredential) -> None:
    audit_record(
        actor=actor,
        action="registry_credential.delete",
        target=credential,
        organization=credential.organization,
        changes={"registry": credential.registry, "username": credential.username},
    )
    credential.delete()


@dataclass(frozen=True)
class PullPolicy:
    """How a host gets a release's image."""

    login: dict | None  # the deploying organization's own login to the image's registry; None: anonymous
    always_pull: bool  # pulled even when the host has it: see pull_policy


def pull_policy(release: Release) -> PullPolicy:
    """The login a host pulls `release`'s image with (the app's organization's credential for the
    image's registry, never another organization's), and whether the image is private.

    A registry some organization logs in to holds private images. Such an image may already be on a
    host, pulled with another organization's login; it is pulled again with the deploying
    organization's own (the layers stay cached), so the registry, not a host's cache, decides who may
    run it. One query: the deploying organization's credential, if it has one, sorts first.
    """
    organization_id = release.app.organization_id
    credential = (
        RegistryCredential.objects.filter(registry=registry_of(release.image))
        .order_by(Case(When(organization_id=organization_id, then=0), default=1))
        .first()
    )
    if credential is None:
        return PullPolicy(login=None, always_pull=False)
    if credential.organization_id != organization_id:
        return PullPolicy(login=None, always_pull=True)
    return PullPolicy(login={"username": credential.username, "password": credential.password}, always_pull=True)
