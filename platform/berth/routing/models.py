"""What the routers serve, kept in PostgreSQL: the hostnames tenants add, and each app's place on a router."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from berth.applications.models import AppChildQuerySet


class Domain(models.Model):
    """A hostname a tenant added to an app. One hostname belongs to at most one app in the installation."""

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="domains")
    hostname = models.CharField(max_length=253, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class RouteSlot(models.Model):
    """The backend an app's servers sit in on every router (`b00042` for number 42). Routers are started
    with a fixed number of empty backends, since HAProxy adds servers at run time but not backends; a
    slot is taken when an app is first routed and freed with the app."""

    app = models.OneToOneField("applications.App", on_delete=models.CASCADE, related_name="route_slot")
    number = models.PositiveIntegerField(unique=True)

    def __str__(self) -> str:
        return backend_name(self.number)


def backend_name(number: int) -> str:
    return f"b{number:05d}"
