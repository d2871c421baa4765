"""Memberships: roles change only within the rules, and an organization always keeps an owner."""

import threading

import pytest
from django.db import connection

from berth.tenancy.models import Membership
from berth.tenancy.roles import Role
from berth.tenancy.services import membership_remove, membership_update_role
from tests.conftest import token_client
from tests.factories import MembershipFactory, OrganizationFactory


def member_url(membership) -> str:
    return f"/api/v1/orgs/{membership.organization.slug}/members/{membership.pk}/"


@pytest.mark.django_db
def test_the_last_owner_cannot_step_down_or_leave(members, owner_client):
    owner = Membership.objects.get(user=members[Role.OWNER])
    response = owner_client.patch(member_url(owner), {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "last_owner"
    assert owner_client.delete(member_url(owner)).status_code == 409
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


@pytest.mark.django_db
def test_an_owner_can_leave_once_another_owner_exists(members, owner_client):
    owner = Membership.objects.get(user=members[Role.OWNER])
    admin = Membership.objects.get(user=members[Role.ADMIN])
    assert owner_client.patch(member_url(admin), {"role": "owner"}, format="json").status_code == 200
    assert owner_client.delete(member_url(owner)).status_code == 204
    assert list(Membership.objects.filter(organization=owner.organization, role=Role.OWNER)) == [admin]


@pytest.mark.django_db
@pytest.mark.parametrize("target_role", [Role.OWNER, Role.DEVELOPER])
def test_an_admin_cannot_grant_or_take_the_owner_role(members, target_role):
    admin = token_client(members[Role.ADMIN])
    victim = MembershipFactory(
        organization=Membership.objects.get(user=members[Role.ADMIN]).organization,
        role=Role.OWNER if target_role == Role.DEVELOPER else Role.DEVELOPER,
    )
    response = admin.patch(member_url(victim), {"role": target_role}, format="json")
    assert response.status_code == 403
    victim.refresh_from_db()
    assert victim.role != target_role


@pytest.mark.django_db
def test_an_admin_cannot_remove_an_owner(members):
    owner = Membership.objects.get(user=members[Role.OWNER])
    assert token_client(members[Role.ADMIN]).delete(member_url(owner)).status_code == 403
    assert Membership.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db
def test_any_member_may_leave(members):
    viewer = Membership.objects.get(user=members[Role.VIEWER])
    client = token_client(members[Role.VIEWER])
    assert client.delete(member_url(viewer)).status_code == 204
    assert client.get("/api/v1/orgs/acme/").status_code == 404


@pytest.mark.django_db
def test_a_viewer_cannot_remove_someone_else(members):
    developer = Membership.objects.get(user=members[Role.DEVELOPER])
    assert token_client(members[Role.VIEWER]).delete(member_url(developer)).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_owners_stepping_down_at_once_leave_one_owner():
    """The owner rows are locked: of two concurrent demotions of the only two owners, one must fail."""
    organization = OrganizationFactory()
    first, second = (MembershipFactory(organization=organization, role=Role.OWNER) for _ in range(2))
    barrier = threading.Barrier(2)
    outcomes = []

    def step_down(membership):
        try:
            barrier.wait()
            membership_update_role(actor=membership.user, membership=membership, role=Role.ADMIN)
            outcomes.append("ok")
        except Exception as error:  # the outcome is what is asserted
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=step_down, args=(m,)) for m in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["Conflict", "ok"]
    assert Membership.objects.filter(organization=organization, role=Role.OWNER).count() == 1


@pytest.mark.django_db
def test_operator_path_still_keeps_an_owner(members):
    owner = Membership.objects.get(user=members[Role.OWNER])
    from berth.core.errors import Conflict

    with pytest.raises(Conflict):
        membership_remove(actor=members[Role.ADMIN], membership=owner, as_operator=True)
