"""Recording audit events. Callers pass only non-secret facts in `changes`."""

from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.db import models

from .context import current_audit_context
from .models import AuditEvent

if TYPE_CHECKING:
    from berth.tenancy.models import Organization, User


def audit_record(
    *,
    actor: "User | AnonymousUser | None",
    action: str,
    target: models.Model,
    organization: "Organization | None" = None,
    changes: dict | None = None,
) -> AuditEvent:
    context = current_audit_context()
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_email=getattr(actor, "email", "") or "",
        organization=organization,
        organization_slug=organization.slug if organization is not None else "",
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk or ""),
        target_repr=str(target)[:200],
        source=context.source,
        ip_address=context.ip_address,
        changes=changes or {},
    )
