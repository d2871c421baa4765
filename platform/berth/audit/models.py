"""The audit log: who did what to which object, when and from where."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from berth.tenancy.querysets import TenantQuerySet


class AuditEvent(models.Model):
    """One change made through the API, the dashboard, the console or by the system. Never holds a secret."""

    class Source(models.TextChoices):
        API = "api", "API"
        CONSOLE = "console", "Console"
        DASHBOARD = "dashboard", "Dashboard"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Snapshots, so the record still reads right after the user or organization is deleted.
    actor_email = models.CharField(max_length=254, blank=True)
    organization = models.ForeignKey(
        "tenancy.Organization", null=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    organization_slug = models.CharField(max_length=40, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_org_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_email or 'system'} {self.action} {self.target_repr}"
