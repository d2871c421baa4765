"""The one place that scopes reads of tenant-owned rows by who is asking (docs/conventions.md#tenancy)."""

from django.db import models

from .roles import roles_allowing


class TenantQuerySet(models.QuerySet):
    """A queryset of rows that belong to an organization, reached through `organization_path`."""

    # Lookup from this model to its Organization; "" when the model is Organization itself.
    organization_path = "organization__"

    def for_actor(self, actor, action: str):
        """Rows the actor may take `action` on: those of orgs where its role allows the action."""
        if actor is None or not actor.is_authenticated or not actor.is_active:
            return self.none()
        from .models import Membership

        # A subquery rather than a join, so the scoping adds no row multiplication and PostgreSQL
        # can plan it as a semi-join (measured in benchmarks/results/api_list_apps.md).
        organizations = Membership.objects.filter(user=actor, role__in=roles_allowing(action)).values("organization_id")
        path = self.organization_path
        return self.filter(**{f"{path}id__in": organizations})
