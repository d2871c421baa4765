"""Shared reads about tenancy. The actor's role in an organization is read here and nowhere else."""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import OuterRef, QuerySet, Subquery

from berth.core.validators import is_slug

from .models import ApiToken, Invitation, Membership, Organization, User
from .roles import Action, Role
from .tokens import token_digest, token_key_id


def memberships_of(user: User | AnonymousUser | None) -> QuerySet[Membership]:
    """The user's memberships: the one read of an actor's roles (none for an anonymous or inactive user,
    as TenantQuerySet.for_actor has it)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Membership.objects.none()
    return Membership.objects.filter(user=user)


def membership_in(user: User | AnonymousUser | None, slug: str) -> Membership | None:
    """The user's membership in the organization with this slug, its organization loaded; None for an
    organization that does not exist and for one the user is not a member of alike."""
    if not is_slug(slug):
        return None  # anything that could never be a slug is answered without touching the database
    return memberships_of(user).select_related("organization").filter(organization__slug=slug).first()


def role_of(user: User | AnonymousUser | None, organization: Organization) -> str | None:
    """The user's role in the organization, or None if the user is not a member."""
    return memberships_of(user).filter(organization=organization).values_list("role", flat=True).first()


def organizations_of(user: User | AnonymousUser | None) -> QuerySet[Organization]:
    """The organizations the user may see, each with `role`, the user's role in it."""
    role = memberships_of(user).filter(organization=OuterRef("pk")).values("role")[:1]
    return Organization.objects.for_actor(user, Action.ORG_VIEW).annotate(role=Subquery(role))


def organization_names_of(user: User | AnonymousUser | None) -> list[dict[str, str]]:
    """The organizations the user may see, as a switcher lists them: {"slug", "name"} by slug. One query,
    without organizations_of's role, which cost as much again to build on every dashboard page."""
    return list(Organization.objects.for_actor(user, Action.ORG_VIEW).values("slug", "name"))


def membership_is_last_owner(membership: Membership) -> bool:
    owners = Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER)
    return membership.pk is not None and list(owners.values_list("pk", flat=True)) == [membership.pk]


def signup_is_open() -> bool:
    """Whether anyone may create an account (BERTH_SIGNUP=open); otherwise only invited people may.
    Any other value than "open" is read as "invite", the closed default."""
    return settings.BERTH_SIGNUP == "open"


def invitation_pending(token: str) -> Invitation | None:
    """The not yet accepted invitation this token opens, with its organization and inviter; None for a
    token that matches none. An expired one is returned too, so its page can say that it expired."""
    if token_key_id(token) is None:
        return None  # not a token Berth makes: answered without touching the database
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(token_digest=token_digest(token), accepted_at__isnull=True)
        .first()
    )


def api_tokens_of(user: User) -> QuerySet[ApiToken]:
    """A person's own API tokens, newest first; nobody sees another person's (their ids are a 404)."""
    return ApiToken.objects.filter(user=user)
