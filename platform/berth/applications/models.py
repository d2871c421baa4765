"""Apps: what a tenant deploys and runs on Berth."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from berth.core.validators import slug_validator
from berth.tenancy.querysets import TenantQuerySet


class App(models.Model):
    """A tenant's application, named by a slug unique within its organization."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE, related_name="apps")
    # Short enough to fit, with suffixes, in a container name and a DNS label.
    name = models.CharField(max_length=30, validators=[slug_validator])
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="app_name_unique_in_org")]

    def __str__(self) -> str:
        return f"{self.organization_id and self.organization.slug}/{self.name}"
