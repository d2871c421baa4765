"""The members page: who is in the organization, and inviting, changing roles, removing and leaving,
through the same services as the API, with the owner rules holding and shown when they refuse."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from berth.audit.models import AuditEvent
from berth.tenancy.models import Invitation, Membership
from berth.tenancy.roles import Role
from berth.tenancy.services import invitation_create
from berth.tenancy.tokens import token_digest
from tests.dashboard.accessibility import assert_accessible
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

TOKEN_IN_LINK = re.compile(r"https?://\S*?(berth_[0-9a-f]{12}_[A-Za-z0-9_-]{43})")


def url(name: str, *args) -> str:
    return reverse(f"dashboard:{name}", args=["acme", *args])


def membership_of(user) -> Membership:
    return Membership.objects.select_related("user").get(user=user)


def snapshot() -> dict:
    return {
        "memberships": sorted(Membership.objects.values_list("user_id", "organization_id", "role")),
        "invitations": sorted(Invitation.objects.values_list("organization_id", "email", "role")),
    }


@pytest.fixture
def pending(members):
    invitation, _ = invitation_create(
        actor=members[Role.OWNER],
        organization=membership_of(members[Role.OWNER]).organization,
        email="pending@example.test",
        role=Role.VIEWER,
    )
    return invitation


# --- the list ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_every_role_sees_each_member_with_email_name_role_and_when_they_joined(role, members, dashboard_client):
    page = dashboard_client(members[role]).get(url("members")).content.decode()
    for person in members.values():
        row = re.search(rf'<tr id="member-{membership_of(person).pk}">.*?</tr>', page, re.S).group(0)
        assert person.email in row and person.name in row
        assert membership_of(person).get_role_display() in row
        assert "<time datetime=" in row and " ago</time>" in row


def test_a_viewer_sees_no_invite_role_or_remove_control_and_no_invitations(members, pending, dashboard_client):
    page = dashboard_client(members[Role.VIEWER]).get(url("members")).content.decode()
    assert "Send invitation" not in page and 'name="role"' not in page and ">Remove<" not in page
    assert pending.email not in page
    # Leaving is every member's own choice, so the viewer is offered that on their own row only.
    assert page.count("Leave Acme") == 1 and url("member-leave") in page


def test_an_owner_sees_the_controls_and_the_pending_invitations(members, pending, dashboard_client):
    page = dashboard_client(members[Role.OWNER]).get(url("members")).content.decode()
    assert "Send invitation" in page
    row = re.search(rf'<tr id="invitation-{pending.pk}">.*?</tr>', page, re.S).group(0)
    assert "pending@example.test" in row and "Viewer" in row and members[Role.OWNER].email in row
    assert "<time datetime=" in row and "in 6" in row  # expires in 6 days, 23 hours
    assert url("invitation-revoke", pending.pk) in row
    for person in [members[Role.ADMIN], members[Role.DEVELOPER], members[Role.VIEWER]]:
        assert url("member-role", membership_of(person).pk) in page
        assert url("member-remove", membership_of(person).pk) in page
    assert '<option value="owner"' in page


def test_an_admin_is_offered_no_owner_role_and_no_control_over_the_owner(members, dashboard_client):
    page = dashboard_client(members[Role.ADMIN]).get(url("members")).content.decode()
    owner = membership_of(members[Role.OWNER])
    assert 'value="owner"' not in page
    assert url("member-role", owner.pk) not in page and url("member-remove", owner.pk) not in page
    developer = membership_of(members[Role.DEVELOPER])
    assert url("member-role", developer.pk) in page and url("member-remove", developer.pk) in page


# --- inviting ------------------------------------------------------------------------------------


def test_an_owner_invites_by_email_and_the_email_links_to_the_invitation(
    members, dashboard_client, django_capture_on_commit_callbacks
):
    client = dashboard_client(members[Role.OWNER])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("member-invite"), {"email": "New.Person@Example.test", "role": "developer"})
    assert response.status_code == 302 and response["Location"] == url("members")
    invitation = Invitation.objects.get(email="new.person@example.test")
    assert (invitation.role, invitation.invited_by) == (Role.DEVELOPER, members[Role.OWNER])
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@example.test"]
    link = TOKEN_IN_LINK.search(mail.outbox[0].body)
    assert link is not None, mail.outbox[0].body
    assert token_digest(link.group(1)) == invitation.token_digest
    assert AuditEvent.objects.get(action="invitation.create").source == "dashboard"
    page = client.get(url("members")).content.decode()
    assert "Invitation sent to new.person@example.test as developer." in page
    assert f'id="invitation-{invitation.pk}"' in page


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("not-an-email", "Enter a valid email address."),
        ("", "This field may not be blank."),
        ("{developer}", "This person is already a member."),
        ("pending@example.test", "This email already has a pending invitation."),
    ],
)
def test_a_refused_invitation_keeps_what_was_typed_and_says_why(email, error, members, pending, dashboard_client):
    email = email.format(developer=members[Role.DEVELOPER].email)
    before = snapshot()
    response = dashboard_client(members[Role.OWNER]).post(url("member-invite"), {"email": email, "role": "admin"})
    page = response.content.decode()
    assert response.status_code == 400
    assert error in page and '<option value="admin" selected>' in page
    assert not email or f'value="{email}"' in page
    assert snapshot() == before and not mail.outbox


def test_an_admin_cannot_invite_an_owner(members, dashboard_client):
    before = snapshot()
    response = dashboard_client(members[Role.ADMIN]).post(
        url("member-invite"), {"email": "boss@example.test", "role": "owner"}
    )
    assert response.status_code == 403
    assert "Only an owner can grant, change or remove the owner role." in response.content.decode()
    assert snapshot() == before


def test_an_admin_invites_with_the_roles_it_may_grant(members, dashboard_client):
    response = dashboard_client(members[Role.ADMIN]).post(
        url("member-invite"), {"email": "dev@example.test", "role": "admin"}
    )
    assert response.status_code == 302
    assert Invitation.objects.get(email="dev@example.test").role == Role.ADMIN


# --- changing a role -----------------------------------------------------------------------------


def test_an_owner_changes_a_members_role(members, dashboard_client):
    developer = membership_of(members[Role.DEVELOPER])
    client = dashboard_client(members[Role.OWNER])
    response = client.post(url("member-role", developer.pk), {"role": "viewer"})
    assert response.status_code == 302
    developer.refresh_from_db()
    assert developer.role == Role.VIEWER
    event = AuditEvent.objects.get(action="membership.update")
    assert (event.changes["role"], event.source) == (["developer", "viewer"], "dashboard")
    assert f"{developer.user.email} is now viewer." in client.get(url("members")).content.decode()


@pytest.mark.parametrize(("target", "role"), [(Role.DEVELOPER, "owner"), (Role.OWNER, "developer")])
def test_an_admin_can_neither_make_nor_unmake_an_owner(target, role, members, dashboard_client):
    membership = membership_of(members[target])
    before = snapshot()
    response = dashboard_client(members[Role.ADMIN]).post(url("member-role", membership.pk), {"role": role})
    assert response.status_code == 403
    assert "Only an owner can grant, change or remove the owner role." in response.content.decode()
    assert snapshot() == before


def test_the_last_owner_cannot_step_down_and_is_told_next_to_the_role(members, dashboard_client):
    owner = membership_of(members[Role.OWNER])
    before = snapshot()
    response = dashboard_client(members[Role.OWNER]).post(url("member-role", owner.pk), {"role": "admin"})
    assert response.status_code == 400
    row = re.search(rf'<tr id="member-{owner.pk}">.*?</tr>', response.content.decode(), re.S).group(0)
    assert "An organization must keep at least one owner." in row
    assert '<option value="admin" selected>' in row and 'aria-invalid="true"' in row
    assert snapshot() == before


def test_an_unknown_role_is_refused_by_the_api_serializer(members, dashboard_client):
    developer = membership_of(members[Role.DEVELOPER])
    before = snapshot()
    response = dashboard_client(members[Role.OWNER]).post(url("member-role", developer.pk), {"role": "emperor"})
    assert response.status_code == 400
    assert "&quot;emperor&quot; is not a valid choice." in response.content.decode()
    assert snapshot() == before


def test_once_there_are_two_owners_one_may_step_down(members, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    admin, owner = membership_of(members[Role.ADMIN]), membership_of(members[Role.OWNER])
    assert client.post(url("member-role", admin.pk), {"role": "owner"}).status_code == 302
    assert client.post(url("member-role", owner.pk), {"role": "admin"}).status_code == 302
    assert set(Membership.objects.filter(role=Role.OWNER).values_list("pk", flat=True)) == {admin.pk}


# --- removing and leaving ------------------------------------------------------------------------


def test_removing_a_member_asks_to_confirm_first(members, dashboard_client):
    developer = membership_of(members[Role.DEVELOPER])
    client = dashboard_client(members[Role.OWNER])
    confirm = client.get(url("member-remove", developer.pk))
    assert confirm.status_code == 200
    assert f"Remove {developer.user.email}?" in confirm.content.decode()
    assert Membership.objects.filter(pk=developer.pk).exists()
    response = client.post(url("member-remove", developer.pk))
    assert response.status_code == 302 and response["Location"] == url("members")
    assert not Membership.objects.filter(pk=developer.pk).exists()
    assert AuditEvent.objects.get(action="membership.remove").changes["user"] == developer.user.email
    page = client.get(url("members")).content.decode()
    assert f"{developer.user.email} is no longer a member." in page
    assert f'id="member-{developer.pk}"' not in page


def test_an_admin_cannot_remove_an_owner_at_either_step(members, dashboard_client):
    owner = membership_of(members[Role.OWNER])
    client = dashboard_client(members[Role.ADMIN])
    before = snapshot()
    for response in (client.get(url("member-remove", owner.pk)), client.post(url("member-remove", owner.pk))):
        assert response.status_code == 403
        assert "Only an owner can grant, change or remove the owner role." in response.content.decode()
    assert snapshot() == before


def test_the_last_owner_cannot_be_removed(members, dashboard_client):
    owner = membership_of(members[Role.OWNER])
    before = snapshot()
    response = dashboard_client(members[Role.OWNER]).post(url("member-remove", owner.pk))
    assert response.status_code == 400
    assert "An organization must keep at least one owner." in response.content.decode()
    assert snapshot() == before


def test_a_member_leaves_after_typing_the_organizations_slug(members, dashboard_client):
    viewer = membership_of(members[Role.VIEWER])
    client = dashboard_client(members[Role.VIEWER])
    assert client.get(url("member-leave")).status_code == 200
    refused = client.post(url("member-leave"), {"confirm": "acne"})
    assert refused.status_code == 400
    assert "Type acme exactly to leave." in refused.content.decode() and 'value="acne"' in refused.content.decode()
    assert Membership.objects.filter(pk=viewer.pk).exists()
    response = client.post(url("member-leave"), {"confirm": "acme"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:home")
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert client.get(url("members")).status_code == 404


def test_the_last_owner_cannot_leave(members, dashboard_client):
    before = snapshot()
    response = dashboard_client(members[Role.OWNER]).post(url("member-leave"), {"confirm": "acme"})
    assert response.status_code == 400
    assert "An organization must keep at least one owner." in response.content.decode()
    assert snapshot() == before


# --- invitations ---------------------------------------------------------------------------------


def test_an_owner_revokes_a_pending_invitation(members, pending, dashboard_client):
    client = dashboard_client(members[Role.OWNER])
    assert client.get(url("invitation-revoke", pending.pk)).status_code == 405
    response = client.post(url("invitation-revoke", pending.pk))
    assert response.status_code == 302
    assert not Invitation.objects.filter(pk=pending.pk).exists()
    assert AuditEvent.objects.get(action="invitation.revoke").changes == {"email": "pending@example.test"}
    page = client.get(url("members")).content.decode()
    assert "The invitation to pending@example.test is revoked." in page and "No pending invitations." in page


# --- roles and other organizations ---------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER, Role.BILLING])
def test_a_forged_member_change_by_a_role_without_member_manage_is_403(role, members, pending, dashboard_client):
    client = dashboard_client(members[role])
    target = membership_of(members[Role.ADMIN])
    before = snapshot()
    forged = [
        (url("member-invite"), {"email": "mole@example.test", "role": "admin"}),
        (url("member-role", target.pk), {"role": "owner"}),
        (url("member-remove", target.pk), {}),
        (url("invitation-revoke", pending.pk), {}),
    ]
    for path, data in forged:
        response = client.post(path, data)
        assert response.status_code == 403, path
        assert "owner or admin" in response.content.decode()
    assert client.get(url("member-remove", target.pk)).status_code == 403
    assert snapshot() == before


def test_an_outsider_gets_404_on_every_members_url(members, pending, outsider, dashboard_client):
    client = dashboard_client(outsider)
    target = membership_of(members[Role.DEVELOPER])
    before = snapshot()
    paths = [
        url("members"),
        url("member-invite"),
        url("member-leave"),
        url("member-role", target.pk),
        url("member-remove", target.pk),
        url("invitation-revoke", pending.pk),
    ]
    for path in paths:
        assert client.get(path).status_code == 404, path
        assert client.post(path, {"role": "owner", "email": "x@example.test", "confirm": "acme"}).status_code == 404
    assert snapshot() == before


def test_another_organizations_members_and_invitations_are_404_here(members, outsider, dashboard_client):
    """An owner of acme who is also in globex cannot reach globex's rows through acme's URLs."""
    globex = OrganizationFactory(slug="initech")
    theirs = MembershipFactory(organization=globex, role=Role.DEVELOPER)
    MembershipFactory(organization=globex, user=members[Role.OWNER], role=Role.OWNER)
    invitation, _ = invitation_create(
        actor=members[Role.OWNER], organization=globex, email="z@example.test", role="viewer"
    )
    client = dashboard_client(members[Role.OWNER])
    before = snapshot()
    assert client.post(url("member-role", theirs.pk), {"role": "viewer"}).status_code == 404
    assert client.get(url("member-remove", theirs.pk)).status_code == 404
    assert client.post(url("member-remove", theirs.pk)).status_code == 404
    assert client.post(url("invitation-revoke", invitation.pk)).status_code == 404
    assert snapshot() == before


def test_a_signed_out_visitor_is_sent_to_sign_in(client, organization):
    response = client.get(url("members"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("dashboard:signin"))


@pytest.mark.parametrize("size", [3, 30])
def test_the_members_page_costs_the_same_queries_whatever_the_number_of_members(
    size, organization, dashboard_client, django_assert_num_queries
):
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    MembershipFactory.create_batch(size - 1, organization=organization, role=Role.DEVELOPER)
    for n in range(size):
        invitation_create(actor=owner, organization=organization, email=f"guest{n}@example.test", role="viewer")
    client = dashboard_client(owner)
    # session, user, membership and organization, the switcher, the members, the invitations
    with django_assert_num_queries(6):
        response = client.get(url("members"))
    assert response.content.decode().count('<tr id="member-') == size
    assert response.content.decode().count('<tr id="invitation-') == size


# --- in the browser ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_browser_an_owner_invites_someone_with_the_keyboard(members, page_as):
    page = page_as(members[Role.OWNER])
    page.goto(url("members"))
    assert_accessible(page)
    page.get_by_label("Email").focus()
    page.keyboard.type("keyboard.person@example.test")
    page.keyboard.press("Tab")  # the role
    page.keyboard.press("End")  # the last role of the list: billing
    page.keyboard.press("Tab")  # the button
    page.keyboard.press("Enter")
    page.get_by_text("Invitation sent to keyboard.person@example.test as billing.").wait_for()
    invitation = Invitation.objects.get(email="keyboard.person@example.test")
    assert invitation.role == Role.BILLING
    assert page.locator(f"#invitation-{invitation.pk}").is_visible()
    assert len(mail.outbox) == 1 and TOKEN_IN_LINK.search(mail.outbox[0].body)
    assert_accessible(page)


@pytest.mark.django_db(transaction=True)
def test_browser_a_refused_invitation_shows_the_error_and_keeps_the_input(members, page_as):
    page = page_as(members[Role.OWNER])
    page.goto(url("members"))
    taken = members[Role.VIEWER].email
    page.get_by_label("Email").fill(taken)
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text("This person is already a member.").wait_for()
    assert page.get_by_label("Email").input_value() == taken
    assert not Invitation.objects.exists()
    assert_accessible(page)
