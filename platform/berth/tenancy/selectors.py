"""Shared reads about tenancy."""

from .models import Membership, Organization
from .roles import Role


def role_of(user, organization: Organization) -> str | None:
    """The user's role in the organization, or None if the user is not a member."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()


def membership_is_last_owner(membership: Membership) -> bool:
    owners = Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER)
    return membership.pk is not None and list(owners.values_list("pk", flat=True)) == [membership.pk]
