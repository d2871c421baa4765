"""What a new installation's people are: a first operator, and a demo tenant with an organization and a
token (`manage.py bootstrap`). Each step leaves what exists alone."""

import secrets

from .models import Organization, User
from .services import api_token_create, organization_create

UNCHANGED = "(unchanged)"


def user_ensure(email: str, password: str | None, *, staff: bool) -> tuple[User, str]:
    """The user with this email, made if missing (an operator if `staff`), and its password: the one
    given or a new one, or UNCHANGED for a user that already existed."""
    user = User.objects.filter(email=email).first()
    if user is not None:
        return user, UNCHANGED
    password = password or secrets.token_urlsafe(12)
    if staff:
        user = User.objects.create_superuser(email, password, name="Operator")
    else:
        user = User.objects.create_user(email, password, name="Demo tenant")
    return user, password


def demo_organization_ensure(owner: User) -> Organization:
    organization = Organization.objects.filter(slug="demo").first()
    if organization is None:
        organization = organization_create(actor=owner, slug="demo", name="Demo organization")
    return organization


def demo_token_create(owner: User) -> str:
    _, token = api_token_create(actor=owner, name="bootstrap")
    return token
