"""Changes to organizations, memberships, invitations and API tokens. Every change is audited."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from berth.audit.services import audit_record
from berth.core.errors import Conflict, Forbidden, Invalid, NotFound

from .models import ApiToken, Invitation, Membership, Organization, User
from .roles import Action, Role, role_allows
from .selectors import invitation_pending, role_of, signup_is_open
from .tokens import token_digest, token_generate, token_key_id, token_matches

# --- people ------------------------------------------------------------------------------------


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "", invitation_token: str | None = None) -> User:
    """Create an account. Anyone may when sign-up is open (BERTH_SIGNUP); otherwise only a person with a
    pending invitation, for the address it was sent to. With an invitation the new person joins its
    organization at once, through `invitation_accept`; if that fails, no account is made."""
    email = email.strip().lower()
    if invitation_token is None and not signup_is_open():
        raise Forbidden("Accounts here are made by invitation only.", code="signup_by_invitation")
    try:
        validate_email(email)
    except ValidationError:
        raise Invalid("Enter a valid email address.", field="email") from None
    if invitation_token is not None:
        invitation = invitation_pending(invitation_token)
        if invitation is None:
            raise NotFound("No pending invitation matches this token.", field="token")
        if email != invitation.email:
            raise Invalid("Sign up with the address the invitation was sent to.", field="email", code="not_invited")
    user = User(email=email, name=name)
    _validate_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise Conflict(
            "An account with this email already exists; sign in instead.", field="email", code="email_taken"
        ) from None
    audit_record(
        actor=user, action="user.signup", target=user, changes={"email": email, "invited": invitation_token is not None}
    )
    if invitation_token is not None:
        invitation_accept(actor=user, token=invitation_token)
    return user


@transaction.atomic
def user_set_password(*, actor: User, password: str, reset: bool = False) -> User:
    """Give the actor a new password, changed while signed in or `reset` through an emailed link.

    Sessions are tied to the password's hash, so every session signed in with the old one ends; the
    caller keeps the current one with `update_session_auth_hash`.
    """
    _validate_password(password, actor)
    actor.set_password(password)
    actor.save(update_fields=["password"])
    audit_record(actor=actor, action="user.password_reset" if reset else "user.password_change", target=actor)
    return actor


def _validate_password(password: str, user: User) -> None:
    """Refuse a password that AUTH_PASSWORD_VALIDATORS refuse, with all of their reasons."""
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise Invalid(" ".join(error.messages), field="password", code="password_invalid") from None


@transaction.atomic
def user_update_profile(*, actor: User, name: str) -> User:
    old = actor.name
    actor.name = name
    actor.save(update_fields=["name"])
    audit_record(actor=actor, action="user.update", target=actor, changes={"name": [old, name]})
    return actor


# --- organizations ----------------------------------------------------------------------------


@transaction.atomic
def organization_create(*, actor: User, slug: str, name: str) -> Organization:
    """Create an organization with the actor as its first owner."""
    try:
        with transaction.atomic():
            organization = Organization.objects.create(slug=slug, name=name, created_by=actor)
    except IntegrityError:
        raise Conflict("An organization with this slug already exists.", field="slug", code="slug_taken") from None
    Membership.objects.create(user=actor, organization=organization, role=Role.OWNER)
    audit_record(
        actor=actor,
        action="organization.create",
        target=organization,
        organization=organization,
        changes={"slug": slug, "name": name},
    )
    return organization


@transaction.atomic
def organization_update(*, actor: User, organization: Organization, name: str) -> Organization:
    old = organization.name
    organization.name = name
    organization.save(update_fields=["name"])
    audit_record(
        actor=actor,
        action="organization.update",
        target=organization,
        organization=organization,
        changes={"name": [old, name]},
    )
    return organization


@transaction.atomic
def organization_delete(*, actor: User, organization: Organization) -> None:
    from berth.billing.models import UsageRecord  # billing builds on tenancy, not the other way round

    if UsageRecord.objects.filter(organization=organization).exists() or organization.invoices.exists():
        raise Conflict(
            "An organization with billing history cannot be deleted; ask an operator to close it.",
            code="billing_history",
        )
    audit_record(actor=actor, action="organization.delete", target=organization, organization=organization)
    organization.delete()


# --- memberships ------------------------------------------------------------------------------


def _lock_owners(organization: Organization) -> list[int]:
    """Owner membership ids, with the organization's row locked first.

    One lock per organization serializes every membership change in it, so two concurrent
    changes cannot both remove the last owner, and cannot deadlock on each other's rows.
    """
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    return list(Membership.objects.filter(organization=organization, role=Role.OWNER).values_list("pk", flat=True))


def _require_owner_rights(actor: User, organization: Organization, *roles: str) -> None:
    if Role.OWNER in roles and not role_allows(role_of(actor, organization), Action.OWNER_MANAGE):
        raise Forbidden("Only an owner can grant, change or remove the owner role.")


@transaction.atomic
def membership_update_role(*, actor: User, membership: Membership, role: str, as_operator: bool = False) -> Membership:
    """Change a member's role. `as_operator` is the console's path: staff act without a tenant role."""
    organization = membership.organization
    owners = _lock_owners(organization)
    current = Membership.objects.get(pk=membership.pk).role
    if not as_operator:
        _require_owner_rights(actor, organization, current, role)
    if current == Role.OWNER and role != Role.OWNER and owners == [membership.pk]:
        raise Conflict("An organization must keep at least one owner.", field="role", code="last_owner")
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.update",
        target=membership,
        organization=organization,
        changes={"user": membership.user.email, "role": [current, role]},
    )
    return membership


def membership_remove_check(*, actor: User, membership: Membership) -> None:
    """Refuse (Forbidden) a removal the actor may not make: any member may remove themselves (leave);
    removing someone else needs member.manage, and owner.manage when that member is an owner.

    Separate from `membership_remove` so a page can ask before it offers the removal.
    """
    if membership.user_id == actor.pk:
        return
    if not role_allows(role_of(actor, membership.organization), Action.MEMBER_MANAGE):
        raise Forbidden("Your role does not allow managing members.")
    _require_owner_rights(actor, membership.organization, membership.role)


@transaction.atomic
def membership_remove(*, actor: User, membership: Membership, as_operator: bool = False) -> None:
    """Remove a member (see `membership_remove_check` for who may); the last owner cannot go."""
    organization = membership.organization
    if not as_operator:
        membership_remove_check(actor=actor, membership=membership)
    if _lock_owners(organization) == [membership.pk]:
        raise Conflict("An organization must keep at least one owner.", code="last_owner")
    audit_record(
        actor=actor,
        action="membership.remove",
        target=membership,
        organization=organization,
        changes={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()


# --- invitations ------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(*, actor: User, organization: Organization, email: str, role: str) -> tuple[Invitation, str]:
    """Invite an email address; returns the invitation and its token, which is shown only once."""
    email = email.strip().lower()
    _require_owner_rights(actor, organization, role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise Conflict("This person is already a member.", field="email", code="already_member")
    Invitation.objects.filter(
        organization=organization, email=email, accepted_at__isnull=True, expires_at__lte=timezone.now()
    ).delete()
    token = token_generate()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                token_digest=token.digest,
                invited_by=actor,
                expires_at=timezone.now() + timedelta(days=settings.BERTH_INVITATION_TTL_DAYS),
            )
    except IntegrityError:
        raise Conflict("This email already has a pending invitation.", field="email", code="already_invited") from None
    audit_record(
        actor=actor,
        action="invitation.create",
        target=invitation,
        organization=organization,
        changes={"email": email, "role": role},
    )
    transaction.on_commit(lambda: _send_invitation(invitation, token.plaintext))
    return invitation, token.plaintext


def _send_invitation(invitation: Invitation, token: str) -> None:
    """Email the invitation's link: its dashboard page shows the organization and the role, and accepts
    it for a signed-in person or lets a new one sign up with the invited address."""
    link = settings.BERTH_PUBLIC_URL.rstrip("/") + reverse("dashboard:invitation-accept", args=[token])
    inviter = invitation.invited_by or "Someone"
    send_mail(
        subject=f"You are invited to {invitation.organization.name} on Berth",
        message=(
            f"{inviter} invited you to join {invitation.organization.name} on Berth as {invitation.role}.\n\n"
            f"Accept the invitation here (the link works until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n"
            f"{link}\n\n"
            f"Sign in as {invitation.email}, or create an account with that address from the same page.\n"
            f'With the API: POST {settings.BERTH_PUBLIC_URL}/api/v1/invitations/accept/ {{"token": "{token}"}}\n'
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> None:
    audit_record(
        actor=actor,
        action="invitation.revoke",
        target=invitation,
        organization=invitation.organization,
        changes={"email": invitation.email},
    )
    invitation.delete()


@transaction.atomic
def invitation_accept(*, actor: User, token: str) -> Membership:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_digest=token_digest(token), accepted_at__isnull=True)
        .first()
    )
    # One answer for unknown, used and someone else's invitations: a token holder learns nothing more.
    if invitation is None or invitation.email != actor.email.lower():
        raise NotFound("No pending invitation matches this token for your account.", field="token")
    if invitation.expires_at <= timezone.now():
        raise Invalid("This invitation has expired; ask for a new one.", field="token", code="expired")
    if Membership.objects.filter(user=actor, organization=invitation.organization).exists():
        raise Conflict("You are already a member of this organization.", field="token", code="already_member")
    membership = Membership.objects.create(user=actor, organization=invitation.organization, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = actor
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        actor=actor,
        action="invitation.accept",
        target=invitation,
        organization=invitation.organization,
        changes={"email": invitation.email, "role": invitation.role},
    )
    return membership


def invitations_purge_expired(*, now: datetime | None = None) -> int:
    """Delete invitations that expired unaccepted; returns how many."""
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lte=now or timezone.now()).delete()
    return deleted


# --- API tokens -------------------------------------------------------------------------------


class TokenRejected(Exception):
    """A presented API token that does not authenticate; `code` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@transaction.atomic
def api_token_create(*, actor: User, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal token; returns the row and the plaintext, which is never stored or shown again."""
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry must be in the future.", field="expires_at", code="expiry_in_past")
    token = token_generate()
    api_token = ApiToken.objects.create(
        user=actor, name=name, key_id=token.key_id, digest=token.digest, expires_at=expires_at
    )
    audit_record(
        actor=actor, action="api_token.create", target=api_token, changes={"name": name, "prefix": api_token.prefix}
    )
    return api_token, token.plaintext


@transaction.atomic
def api_token_revoke(*, actor: User, api_token: ApiToken) -> ApiToken:
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_token.revoke", target=api_token, changes={"prefix": api_token.prefix})
    return api_token


def api_token_authenticate(plaintext: str) -> tuple[User, ApiToken]:
    """The user a presented token belongs to; raises TokenRejected with the reason otherwise."""
    key_id = token_key_id(plaintext)
    api_token = ApiToken.objects.select_related("user").filter(key_id=key_id).first() if key_id is not None else None
    if api_token is None or not token_matches(plaintext, api_token.digest):
        raise TokenRejected("invalid_token", "The API token is not valid.")
    if api_token.revoked_at is not None:
        raise TokenRejected("token_revoked", "The API token has been revoked.")
    if api_token.is_expired:
        raise TokenRejected("token_expired", "The API token has expired.")
    if not api_token.user.is_active:
        raise TokenRejected("user_inactive", "The account that owns this token is disabled.")
    _touch(api_token)
    return api_token.user, api_token


def _touch(api_token: ApiToken) -> None:
    now = timezone.now()
    interval = timedelta(seconds=settings.BERTH_TOKEN_TOUCH_INTERVAL)
    if api_token.last_used_at is None or now - api_token.last_used_at >= interval:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
