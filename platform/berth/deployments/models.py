"""Deployments: the jobs that move an app to a release or a formation, with steps a person can read."""

from django.conf import settings
from django.db import models
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

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (previous release kept)"

    UNFINISHED = (State.QUEUED, State.RUNNING)

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
