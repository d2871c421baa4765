"""The one place that scopes reads of tenant-owned rows by who is asking (STYLE.md, "Tenancy")."""

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
        path = self.organization_path
        return self.filter(
            **{f"{path}memberships__user": actor, f"{path}memberships__role__in": roles_allowing(action)}
        )
