"""Deployments: the jobs that move an app to a release or a formation, with steps a person can read."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from berth.applications.models import AppChildQuerySet


class Deployment(models.Model):
    """One job that converges an app on a release and formation; claimed by exactly one worker at a time."""

    class Kind(models.TextChoices):
        RELEASE = "release", "New release"
        ROLLBACK = "rollback", "Rollback"
        SCALE = "scale", "Formation change"
        RESTART = "restart", "Restart"
        HEAL = "heal", "Self-healing"
        # A canary's own deployments: start it (or change its weight), and take it away. Its release runs
        # beside the app's release, not instead of it, so these never make it the target (BESIDE).
        CANARY = "canary", "Canary"
        ABORT = "abort", "Canary abort"
        # The canary's release becomes the app's release: its replicas join it, the old ones go.
        PROMOTE = "promote", "Canary promotion"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (previous release kept)"

    UNFINISHED = (State.QUEUED, State.RUNNING)
    # Kinds whose release is a canary's, deployed beside the app's release: never its target release.
    BESIDE = (Kind.CANARY, Kind.ABORT)

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="deployments")
    release = models.ForeignKey("applications.Release", on_delete=models.CASCADE, related_name="deployments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # For restarts: which process type or container to replace ("" = all).
    restart_process_type = models.CharField(max_length=30, blank=True)
    restart_container = models.ForeignKey(
        "fleet.Container", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The formation before this deployment, restored if it fails: {process type: {quantity, size}}.
    previous_formation = models.JSONField(default=dict, blank=True)
    # The formation this change asked for. If the deployment fails, each process type it changed goes
    # back to `previous_formation`, unless a later change set it again (docs/deploys.md).
    formation = models.JSONField(default=dict, blank=True)
    previous_release = models.ForeignKey(
        "applications.Release", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The claim: which worker runs it, and when it last proved it is alive.
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    objects = AppChildQuerySet.as_manager()

    # Not a column: when this process last wrote heartbeat_at (worker.runtime.heartbeat).
    _heartbeat_sent: float

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="deployment_state_heartbeat")]

    def __str__(self) -> str:
        return f"deployment {self.pk} of {self.app.name} to v{self.release.version}"


class DeploymentStep(models.Model):
    """One timestamped line of what a deployment did and why."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField(default=timezone.now)
    message = models.TextField()
    host = models.ForeignKey("fleet.DockerHost", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    container = models.ForeignKey("fleet.Container", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S.%f} {self.message}"


class Canary(models.Model):
    """A release deployed beside the app's release for some of its HTTP traffic, until promoted or aborted.

    While it is active, every converge of the app (deploys, scales, heals) keeps its replicas beside the
    app's release's, and the routers give them `weight` % of the requests (docs/deploys.md#canary-releases).
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PROMOTED = "promoted", "Promoted"
        ABORTED = "aborted", "Aborted"
        FAILED = "failed", "Failed"

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="canaries")
    release = models.ForeignKey("applications.Release", on_delete=models.CASCADE, related_name="+")
    # The share of the requests its replicas get, in percent (1 to 99).
    weight = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Why it ended when Berth ended it (its replicas never became healthy, a rollback); "" otherwise.
    reason = models.TextField(blank=True)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["app"], condition=Q(state="active"), name="one_active_canary_per_app")
        ]

    def __str__(self) -> str:
        return f"canary v{self.release.version} of {self.app.name} at {self.weight}%"


class Run(models.Model):
    """One command run once in a container of its own, from a release's image and config (docs/runs.md):
    a one-off run a person asked for, or the release command a deployment runs before its release serves.

    Its container is a `fleet.Container` like any other (hardened, placed and billed alike), of process type
    `run` and index the run's id: never a replica, so no converge or heal counts, stops or replaces it.
    """

    class Kind(models.TextChoices):
        RUN = "run", "One-off run"
        RELEASE = "release", "Release command"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Exited with code 0"
        FAILED = "failed", "Exited with another code"
        TIMED_OUT = "timed_out", "Killed at its timeout"
        LOST = "lost", "Lost (its container or host went away, or it could not start)"

    UNFINISHED = (State.QUEUED, State.RUNNING)

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="runs")
    release = models.ForeignKey("applications.Release", on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RUN)
    # The deployment whose release command this is (kind `release`).
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="release_runs"
    )
    command = models.JSONField()
    size = models.ForeignKey("fleet.Size", on_delete=models.PROTECT, related_name="+")
    timeout_s = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Where it runs: chosen before its container is created, so a worker that takes the run over finds it.
    host = models.ForeignKey("fleet.DockerHost", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    container_name = models.CharField(max_length=128, blank=True)
    container = models.ForeignKey("fleet.Container", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # The host's StartedAt and FinishedAt of its container.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The claim, as for deployments: which worker waits for it, and when it last proved it is alive.
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="run_state_heartbeat")]

    def __str__(self) -> str:
        return f"run.{self.pk} of {self.app.name}"

    @property
    def process(self) -> str:
        """Its name in the logs: `app[run.12]`."""
        return f"run.{self.pk}"

    @property
    def finished(self) -> bool:
        return self.state not in self.UNFINISHED
