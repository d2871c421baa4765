"""The fleet: Docker hosts, the sizes containers run at, and the containers observed on the hosts."""

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from berth.core.crypto import EncryptedTextField
from berth.core.validators import slug_validator
from berth.tenancy.querysets import TenantQuerySet


class DockerHost(models.Model):
    """A Docker engine that Berth places containers on.

    `state` is the operator's intent (may it take containers?) and `status` what the worker
    last observed (does it answer?). They are separate because they change independently: a
    cordoned host can go down and come back still cordoned.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        CORDONED = "cordoned", "Cordoned (no new containers)"
        DRAINING = "draining", "Draining (containers move away)"
        RETIRED = "retired", "Removed from the fleet"

    class Status(models.TextChoices):
        PENDING = "pending", "Not checked yet"
        UP = "up", "Up"
        # The engine answers, but the host's address does not: published ports are unreachable.
        DEGRADED = "degraded", "Degraded (its address does not answer)"
        DOWN = "down", "Down"

    name = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    engine_url = models.CharField(
        max_length=255, help_text="unix:///var/run/docker.sock, tcp://host:2376 (TLS) or ssh://user@host"
    )
    tls_ca_cert = models.TextField(
        blank=True, help_text="PEM; for tcp:// engines: the engine's certificate is checked against it"
    )
    tls_client_cert = models.TextField(blank=True, help_text="PEM; for tcp:// engines")
    tls_client_key = EncryptedTextField(blank=True, help_text="PEM; stored encrypted")
    ssh_private_key = EncryptedTextField(blank=True, help_text="OpenSSH or PEM, no passphrase; stored encrypted")
    ssh_host_key = models.TextField(
        blank=True,
        help_text="For ssh:// engines: the server's public host key (ssh-ed25519 AAAA…) or its SHA256: fingerprint",
    )
    address = models.GenericIPAddressField(help_text="The address the host's published ports answer on.")
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(64)])
    cpu_millis = models.PositiveIntegerField(validators=[MinValueValidator(100)], help_text="1000 = one core")
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    engine_version = models.CharField(max_length=64, blank=True)
    engine_id = models.CharField(max_length=128, blank=True)
    # Root in a container is an unprivileged user on the host (detected from the engine).
    userns_remap = models.BooleanField(default=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["active", "cordoned", "draining", "retired"]), name="host_state"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "up", "degraded", "down"]), name="host_status"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    STATUS_HELP = (
        "What the worker's heartbeat last observed. pending: not checked yet. up: the engine answers and so "
        "does the host's address, on its containers' published ports. degraded: the engine answers but the "
        "address does not (last_error says which ports and why): the host takes no new containers, and its "
        "containers, which fail their health checks, are replaced on other hosts; it is up again as soon as "
        "its address answers. down: the engine has not answered for BERTH_HOST_DOWN_AFTER_SECONDS; its "
        "containers are lost and replaced."
    )

    # Statuses in which the engine answers: the host is observed and its containers probed, though
    # only an `up` one takes new containers (a degraded one's containers fail their checks and move).
    ANSWERING = (Status.UP, Status.DEGRADED)


class Size(models.Model):
    """A container size operators offer: memory and CPU limits."""

    name = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(16)])
    cpu_millis = models.PositiveIntegerField(validators=[MinValueValidator(10)], help_text="1000 = one core")
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["memory_mb", "name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="one_default_size")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.memory_mb} MB, {self.cpu_millis / 1000:g} CPU)"


class Container(models.Model):
    """A container as the worker last observed it on a host; rebuilt from its labels if lost."""

    class State(models.TextChoices):
        CREATED = "created", "Created"
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Being stopped by Berth"
        REMOVED = "removed", "Stopped by Berth"
        EXITED = "exited", "Exited on its own"
        LOST = "lost", "Lost with its host"

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        STARTING = "starting", "Starting"
        HEALTHY = "healthy", "Healthy"
        UNHEALTHY = "unhealthy", "Unhealthy"

    host = models.ForeignKey(DockerHost, on_delete=models.PROTECT, related_name="containers")
    docker_id = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="containers")
    release = models.ForeignKey("applications.Release", on_delete=models.CASCADE, related_name="containers")
    deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="containers"
    )
    process_type = models.CharField(max_length=30)
    index = models.PositiveIntegerField()
    # A replica of the app's canary (deployments.Canary): its slots (process type, index) are apart from
    # the app's release's, and the routers give it the canary's share of the requests.
    canary = models.BooleanField(default=False)
    size = models.ForeignKey(Size, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    health_failures = models.PositiveIntegerField(default=0)
    published_port = models.PositiveIntegerField(null=True, blank=True)
    image_digest = models.CharField(max_length=128, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    oom_killed = models.BooleanField(default=False)
    # As the host reports them (docs/architecture.md#invariants: metering uses the host's clock).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When it first passed its health check: how long it stayed healthy decides readiness and back-off.
    healthy_at = models.DateTimeField(null=True, blank=True)
    # When Berth deleted it from the engine (it may exist there no longer).
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["app", "process_type", "index", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["host", "docker_id"], name="container_unique_on_host")]
        indexes = [
            models.Index(fields=["app", "state"], name="container_app_state"),
            models.Index(fields=["host", "state"], name="container_host_state"),
            # Placement counts the containers that recently failed to become healthy on each host.
            models.Index(
                fields=["host", "created_at"],
                condition=models.Q(healthy_at__isnull=True),
                name="container_never_healthy",
            ),
            # Metrics count the containers that ended on their own in the last minutes, every pass.
            models.Index(
                fields=["finished_at"],
                condition=models.Q(state__in=["exited", "lost"]),
                name="container_ended_on_its_own",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    LIVE = (State.CREATED, State.RUNNING)

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE


class Router(models.Model):
    """A router in front of the fleet (docs/routing.md): HAProxy, driven through its runtime API by the
    worker, which pushes it the route table derived from PostgreSQL; Caddy beside it terminates TLS.

    Like a host, `state` is the operator's intent (does Berth keep it in step?) and `status` what the
    worker last observed (does its admin endpoint answer?). A router holds nothing PostgreSQL does not.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled (not kept in step)"

    class Status(models.TextChoices):
        PENDING = "pending", "Not synced yet"
        UP = "up", "Up"
        DOWN = "down", "Down (its admin endpoint does not answer)"

    name = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    admin_url = models.CharField(
        max_length=255,
        help_text="HAProxy's runtime API: unix:///path/admin.sock, or tcp://127.0.0.1:PORT on the worker's machine",
    )
    public_address = models.CharField(
        max_length=255, help_text="The address (or DNS name) clients reach the router at; shown to operators"
    )
    http_port = models.PositiveIntegerField(default=80, validators=[MinValueValidator(1)])
    https_port = models.PositiveIntegerField(default=443, validators=[MinValueValidator(1)])
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # What the last pass found: how many apps the router can hold (its backends) and holds now.
    capacity = models.PositiveIntegerField(null=True, blank=True)
    routes = models.PositiveIntegerField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=["active", "disabled"]), name="router_state"),
            models.CheckConstraint(condition=models.Q(status__in=["pending", "up", "down"]), name="router_status"),
        ]

    def __str__(self) -> str:
        return self.name
