"""Console pages for deployments: every app's jobs, the stuck and failed ones first. Read-only."""

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from django.utils.text import Truncator

from berth.console.readonly import ReadOnlyAdminMixin

from .models import Deployment, DeploymentStep


class DeploymentStepInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeploymentStep
    readonly_fields = fields = ("at", "message", "host", "container")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("host", "container")


def needs_attention():
    """1 for a deployment an operator should look at: failed, or stuck as the worker's sweep defines it."""
    stale_before = timezone.now() - timedelta(seconds=settings.BERTH_DEPLOYMENT_STALE_SECONDS)
    stuck = Q(state=Deployment.State.RUNNING, heartbeat_at__lt=stale_before) | Q(
        state=Deployment.State.QUEUED, created_at__lt=stale_before
    )
    return Case(When(Q(state=Deployment.State.FAILED) | stuck, then=Value(1)), default=Value(0))


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "app_label",
        "kind",
        "state",
        "attention",
        "release_version",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "short_error",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["app__name", "app__organization__slug"]
    list_select_related = ["app__organization", "release", "created_by"]
    inlines = [DeploymentStepInline]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(attention=needs_attention())

    def get_ordering(self, request):
        # An expression, not the annotation's name: Django also orders the deployment choices of other
        # admins' forms by this, on querysets without the annotation. Per request, as "stale" moves with time.
        return [needs_attention().desc(), "-created_at", "-id"]

    @admin.display(boolean=True, ordering="attention", description="needs attention")
    def attention(self, deployment):
        return bool(deployment.attention)

    @admin.display(ordering="app__name", description="app")
    def app_label(self, deployment):
        return str(deployment.app)

    @admin.display(ordering="release__version", description="release")
    def release_version(self, deployment):
        return f"v{deployment.release.version}"

    @admin.display(description="error")
    def short_error(self, deployment):
        return Truncator(deployment.error).chars(80)
