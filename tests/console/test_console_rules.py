"""Console rules that hold without a browser: memberships keep their person and organization."""

import pytest

from berth.tenancy.models import Membership
from berth.tenancy.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory


@pytest.mark.django_db
def test_a_membership_cannot_be_moved_to_another_organization(operator_client):
    solo = MembershipFactory(organization=OrganizationFactory(slug="solo"), role=Role.OWNER)
    other = OrganizationFactory(slug="other")
    response = operator_client.post(
        f"/console/tenancy/membership/{solo.pk}/change/",
        {"user": solo.user_id, "organization": other.pk, "role": Role.OWNER},
    )
    assert response.status_code == 302
    solo.refresh_from_db()
    assert solo.organization.slug == "solo"
    assert Membership.objects.filter(organization__slug="solo", role=Role.OWNER).count() == 1


@pytest.mark.django_db
def test_organization_autocomplete_pages_in_a_stable_order(operator_client):
    for i in range(25):
        OrganizationFactory(slug=f"other-{i:02d}")
    url = "/console/autocomplete/?term=other&app_label=tenancy&model_name=membership&field_name=organization"
    first = operator_client.get(url)
    second = operator_client.get(f"{url}&page=2")
    assert first.status_code == second.status_code == 200
    slugs = [item["text"] for item in first.json()["results"] + second.json()["results"]]
    assert slugs == sorted(slugs)
    assert len(set(slugs)) == 25
