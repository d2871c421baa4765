"""An organization's members and invitations: who is in it with which role, inviting, changing, removing.

Every change goes through `tenancy.services`, the functions the API's MembershipViewSet and
InvitationViewSet call, with the input parsed by the same serializers; so the owner rules (only an owner
grants, changes or removes the owner role; the last owner stays) hold here because they hold there, and
their refusals are shown next to what they are about.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from berth.api.errors import flatten_detail
from berth.api.serializers import InvitationCreateSerializer, MembershipUpdateSerializer
from berth.core.errors import BerthError, Forbidden
from berth.tenancy import services
from berth.tenancy.models import Invitation, Membership
from berth.tenancy.roles import Action, Role, role_allows

from ..access import actor, org_page
from ..forms import add_refusal, parsed_as_api


def role_choices(owner_manage: bool) -> list[tuple[str, str]]:
    """The roles to offer: the owner role only to those who may grant it (the role table's owner.manage)."""
    return [(value, label) for value, label in Role.choices if owner_manage or value != Role.OWNER]


def refusal_status(error: BerthError | ValidationError) -> int:
    """403 for a refusal of the actor's rights, 400 for any other refused form (docs/dashboard.md#forms)."""
    return 403 if isinstance(error, Forbidden) else 400


class InviteForm(forms.Form):
    """What the invite form shows and keeps; the API's InvitationCreateSerializer decides what is valid."""

    email = forms.CharField(
        label="Email",
        required=False,
        widget=forms.EmailInput(attrs={"required": True, "maxlength": 254, "autocomplete": "off"}),
    )
    role = forms.CharField(label="Role", required=False, initial=Role.DEVELOPER, widget=forms.Select)

    def __init__(self, *args, owner_manage: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].widget.choices = role_choices(owner_manage)


class LeaveForm(forms.Form):
    """Leaving is confirmed by typing the organization's slug, so a stray click or request does not do it."""

    confirm = forms.CharField(label="Type the organization's slug to confirm", max_length=40)

    def __init__(self, *args, slug: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.slug = slug
        self.fields["confirm"].help_text = f"Type {slug}."
        self.fields["confirm"].widget.attrs["autocomplete"] = "off"

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"].strip() != self.slug:
            raise forms.ValidationError(f"Type {self.slug} exactly to leave.")
        return self.slug


def member_of(request: HttpRequest, membership: Membership, membership_id: int) -> Membership:
    """A member of this organization, through the one scoping; another organization's id is a 404."""
    target = (
        Membership.objects.for_actor(request.user, Action.MEMBER_VIEW)
        .filter(organization=membership.organization, pk=membership_id)
        .select_related("user", "organization")
        .first()
    )
    if target is None:
        raise Http404("No such member.")
    return target


def members_page(
    request: HttpRequest,
    membership: Membership,
    *,
    invite_form: InviteForm | None = None,
    role_refusal: dict | None = None,
    status: int = 200,
) -> HttpResponse:
    """The members page: the members, and for those who manage them the pending invitations and the forms.

    `role_refusal` ({"member": id, "role": what was chosen, "errors": [...]}) puts a refused role change
    back next to that member's role.
    """
    organization = membership.organization
    owner_manage = role_allows(membership.role, Action.OWNER_MANAGE)
    people = (
        Membership.objects.for_actor(request.user, Action.MEMBER_VIEW)
        .filter(organization=organization)
        .select_related("user")
        .order_by("user__email")
    )
    # The API lists invitations to managers (member.manage) only; the other roles get none, without a query.
    invitations = (
        Invitation.objects.for_actor(request.user, Action.MEMBER_MANAGE)
        .filter(organization=organization, accepted_at__isnull=True)
        .select_related("invited_by")
        .annotate(expired=ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField()))
        .order_by("email")
        if role_allows(membership.role, Action.MEMBER_MANAGE)
        else Invitation.objects.none()
    )
    refused = role_refusal or {}
    rows = [
        {
            "member": person,
            "chosen": refused["role"] if refused.get("member") == person.pk else person.role,
            "errors": refused["errors"] if refused.get("member") == person.pk else [],
        }
        for person in people
    ]
    context = {
        "rows": rows,
        "invitations": invitations,
        "invitation_days": settings.BERTH_INVITATION_TTL_DAYS,
        "invite_form": invite_form or InviteForm(owner_manage=owner_manage),
        "role_choices": role_choices(owner_manage),
    }
    return render(request, "dashboard/members/list.html", context, status=status)


@org_page(Action.MEMBER_VIEW)
def member_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return members_page(request, membership)


@org_page(Action.MEMBER_MANAGE)
@require_POST
def invite(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Invite an email address with a role; the service records it and sends the email with the link."""
    form = InviteForm(request.POST, owner_manage=role_allows(membership.role, Action.OWNER_MANAGE))
    data = parsed_as_api(form, InvitationCreateSerializer)
    if data is None:
        return members_page(request, membership, invite_form=form, status=400)
    try:
        invitation, _token = services.invitation_create(
            actor=actor(request), organization=membership.organization, **data
        )
    except BerthError as error:
        # The owner-role refusal names no field; it is about the role chosen.
        add_refusal(form, error, fields={"": "role"})
        return members_page(request, membership, invite_form=form, status=refusal_status(error))
    messages.success(request, f"Invitation sent to {invitation.email} as {invitation.get_role_display().lower()}.")
    return redirect("dashboard:members", membership.organization.slug)


@org_page(Action.MEMBER_MANAGE)
@require_POST
def role_change(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    target = member_of(request, membership, membership_id)
    chosen = request.POST.get("role", "")
    data = MembershipUpdateSerializer(data={"role": chosen})
    try:
        if not data.is_valid():
            raise ValidationError(data.errors)
        services.membership_update_role(actor=actor(request), membership=target, **data.validated_data)
    except (BerthError, ValidationError) as error:
        if isinstance(error, BerthError):
            texts = [error.message]
        else:
            texts = [text for field_texts in flatten_detail(error.detail).values() for text in field_texts]
        refusal = {"member": target.pk, "role": chosen, "errors": texts}
        return members_page(request, membership, role_refusal=refusal, status=refusal_status(error))
    messages.success(request, f"{target.user.email} is now {target.get_role_display().lower()}.")
    return redirect("dashboard:members", membership.organization.slug)


@org_page(Action.MEMBER_MANAGE)
def member_remove(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    """GET: the confirm step; POST: remove. A removal the service would refuse is a 403 at either step."""
    target = member_of(request, membership, membership_id)
    try:
        services.membership_remove_check(actor=actor(request), membership=target)
    except Forbidden as error:
        raise PermissionDenied(error.message) from None
    error_text = None
    if request.method == "POST":
        try:
            services.membership_remove(actor=actor(request), membership=target)
        except Forbidden as error:
            raise PermissionDenied(error.message) from None
        except BerthError as error:
            error_text = error.message
        else:
            if target.user_id == request.user.pk:
                messages.success(request, f"You left {membership.organization.name}.")
                return redirect("dashboard:home")
            messages.success(request, f"{target.user.email} is no longer a member.")
            return redirect("dashboard:members", membership.organization.slug)
    context = {"target": target, "error": error_text}
    return render(request, "dashboard/members/remove.html", context, status=400 if error_text else 200)


@org_page(Action.MEMBER_VIEW)
def leave(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Leave the organization: every member may, as in the API, unless they are its last owner."""
    organization = membership.organization
    form = LeaveForm(request.POST if request.method == "POST" else None, slug=organization.slug)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_remove(actor=actor(request), membership=membership)
        except BerthError as error:
            add_refusal(form, error)
        else:
            messages.success(request, f"You left {organization.name}.")
            return redirect("dashboard:home")
    status = 400 if form.is_bound else 200
    return render(request, "dashboard/members/leave.html", {"form": form}, status=status)


@org_page(Action.MEMBER_MANAGE)
@require_POST
def invitation_revoke(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    invitation = (
        Invitation.objects.for_actor(request.user, Action.MEMBER_MANAGE)
        .filter(organization=membership.organization, pk=invitation_id, accepted_at__isnull=True)
        .select_related("organization")
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation.")
    services.invitation_revoke(actor=actor(request), invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} is revoked.")
    return redirect("dashboard:members", membership.organization.slug)
