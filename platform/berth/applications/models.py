"""Apps: what a tenant deploys and runs on Berth."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from berth.core.crypto import EncryptedJSONField, EncryptedTextField
from berth.core.validators import slug_validator
from berth.tenancy.querysets import TenantQuerySet

from .specs import load_process_types


class App(models.Model):
    """A tenant's application, named by a slug unique within its organization."""

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE, related_name="apps")
    # Short enough to fit, with suffixes, in a container name and a DNS label.
    name = models.CharField(max_length=30, validators=[slug_validator])
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # The release the app should run: moved by a deployment that succeeded, and only by one.
    current_release = models.ForeignKey("Release", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Routing (docs/routing.md): plain HTTP requests are redirected to HTTPS; and how long a replica
    # leaving the routes may finish the requests it has before it is stopped anyway.
    https_only = models.BooleanField(default=False)
    drain_timeout_s = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(900)])

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="app_name_unique_in_org")]

    def __str__(self) -> str:
        return f"{self.organization_id and self.organization.slug}/{self.name}"


class AppChildQuerySet(TenantQuerySet):
    """Rows that belong to an app, and through it to an organization."""

    organization_path = "app__organization__"


CONFIG_KEY = RegexValidator(
    r"^[A-Z_][A-Z0-9_]{0,99}\Z", "Use uppercase letters, digits and underscores.", "invalid_key"
)


class ConfigVar(models.Model):
    """One environment variable of an app, encrypted at rest. Changing one makes a new release."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="config_vars")
    key = models.CharField(max_length=100, validators=[CONFIG_KEY])
    value = EncryptedTextField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="config_key_unique_in_app")]

    def __str__(self) -> str:
        return self.key


class Release(models.Model):
    """An immutable, numbered version of an app: image, process types and a config snapshot."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="releases")
    version = models.PositiveIntegerField()
    image = models.CharField(max_length=255)
    # Set when a host first reports the image it ran (docs/architecture.md#containers, "Images").
    image_digest = models.CharField(max_length=128, blank=True)
    process_types = models.JSONField()
    config = EncryptedJSONField()
    # Run once before any container of the release serves; a failure fails its deployment
    # (specs.parse_release_command: {} or {"command": [...], "timeout_s": n}; docs/deploys.md).
    release_command = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=200, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    rollback_of = models.PositiveIntegerField(null=True, blank=True, help_text="The version this one restores.")
    created_at = models.DateTimeField(default=timezone.now)
    # Set when Berth found this release crash-looping and rolled the app back from it automatically.
    crash_looped_at = models.DateTimeField(null=True, blank=True)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["app", "-version"]
        constraints = [models.UniqueConstraint(fields=["app", "version"], name="release_version_unique_in_app")]

    def __str__(self) -> str:
        return f"{self.app.name} v{self.version}"

    @property
    def processes(self):
        return load_process_types(self.process_types)


class Formation(models.Model):
    """How many containers of one process type an app wants, and at which size."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="formation")
    process_type = models.CharField(max_length=30)
    quantity = models.PositiveIntegerField(default=1, validators=[MaxValueValidator(100)])
    size = models.ForeignKey("fleet.Size", on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["app", "process_type"]
        constraints = [
            models.UniqueConstraint(fields=["app", "process_type"], name="formation_unique"),
            models.CheckConstraint(condition=models.Q(quantity__lte=100), name="formation_quantity_max"),
        ]

    def __str__(self) -> str:
        return f"{self.app.name} {self.process_type}={self.quantity}:{self.size.name}"


# A registry as Docker names it in an image reference: a host with a dot or a port, or localhost.
REGISTRY_HOST = RegexValidator(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+(?::[0-9]{1,5})?"
    r"|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?:[0-9]{1,5}|localhost)\Z",
    "Give the registry's host and optional port as in an image name, such as registry.example.com or "
    "10.0.0.5:5000 (no scheme, no path).",
    "invalid_registry",
)


class RegistryCredential(models.Model):
    """An organization's login to one image registry, used when a host pulls that org's images."""

    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="registry_credentials"
    )
    registry = models.CharField(max_length=255, validators=[REGISTRY_HOST])
    username = models.CharField(max_length=255)
    password = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["registry"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "registry"], name="registry_credential_unique_in_org")
        ]

    def __str__(self) -> str:
        return self.registry
