"""What apps' containers and routes did, downsampled (docs/metrics.md): buckets of a minute and of an
hour, each added to by every sampling pass that falls in it, and the last counters each pass read.

Rows are written only by `metrics.services`, from what the worker read off engines and routers.
"""

from django.db import models

from berth.applications.models import AppChildQuerySet

MINUTE = 60
HOUR = 3600
STEPS = (MINUTE, HOUR)


class ContainerBucket(models.Model):
    """One replica slot of an app (process type and index, whichever container fills it) over one minute
    or one hour: the sum and peak of its CPU and memory readings, and how many times it ended on its own."""

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="+")
    process_type = models.CharField(max_length=30)
    index = models.PositiveIntegerField()
    # A canary's replicas number their slots apart from the release's (fleet.Container.canary).
    canary = models.BooleanField(default=False)
    step = models.PositiveIntegerField()  # seconds: MINUTE or HOUR
    start = models.DateTimeField()
    # Readings added (each the difference from the container's previous reading); averages are sums / samples.
    samples = models.PositiveIntegerField(db_default=0)
    # CPU in thousandths of a core (1000 = one core busy), as the size's limit is given.
    cpu_millis_sum = models.FloatField(db_default=0)
    cpu_millis_max = models.FloatField(db_default=0)
    cpu_limit_millis = models.PositiveIntegerField(db_default=0)
    memory_bytes_sum = models.BigIntegerField(db_default=0)
    memory_bytes_max = models.BigIntegerField(db_default=0)
    memory_limit_bytes = models.BigIntegerField(db_default=0)
    # Containers of the slot that exited or were lost with their host in the bucket (Berth replaces them).
    restarts = models.PositiveIntegerField(db_default=0)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["app", "step", "start", "process_type", "index", "canary"], name="container_bucket_unique"
            ),
            models.CheckConstraint(condition=models.Q(step__in=STEPS), name="container_bucket_step"),
        ]
        # Pruning deletes by age across apps.
        indexes = [models.Index(fields=["step", "start"], name="container_bucket_age")]

    def __str__(self) -> str:
        canary = " canary" if self.canary else ""
        return f"{self.process_type}.{self.index}{canary} {self.start:%Y-%m-%d %H:%M}/{self.step}s"


class RouteBucket(models.Model):
    """An app's HTTP requests through every router over one minute or one hour: how many, by status
    class, and their mean times (HAProxy's averages, weighted by the requests each reading covered)."""

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="+")
    step = models.PositiveIntegerField()
    start = models.DateTimeField()
    requests = models.BigIntegerField(db_default=0)
    status_1xx = models.BigIntegerField(db_default=0)
    status_2xx = models.BigIntegerField(db_default=0)
    status_3xx = models.BigIntegerField(db_default=0)
    status_4xx = models.BigIntegerField(db_default=0)
    status_5xx = models.BigIntegerField(db_default=0)
    status_other = models.BigIntegerField(db_default=0)
    # Sums of (mean time in ms x requests) over the readings; divided by `requests` when read.
    response_ms_weighted = models.FloatField(db_default=0)
    total_ms_weighted = models.FloatField(db_default=0)

    objects = AppChildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "step", "start"], name="route_bucket_unique"),
            models.CheckConstraint(condition=models.Q(step__in=STEPS), name="route_bucket_step"),
        ]
        indexes = [models.Index(fields=["step", "start"], name="route_bucket_age")]

    def __str__(self) -> str:
        return f"app {self.app_id} {self.start:%Y-%m-%d %H:%M}/{self.step}s"


class Reading(models.Model):
    """The last cumulative counters read from one source (a container's CPU time, a router backend's
    request counts): the next reading of the same source is turned into a figure by the difference."""

    key = models.CharField(max_length=200, primary_key=True)
    read_at = models.DateTimeField()
    values = models.JSONField()

    def __str__(self) -> str:
        return self.key
