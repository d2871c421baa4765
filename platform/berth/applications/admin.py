from django.contrib import admin

from berth.console.audited import AuditedModelAdmin
from berth.console.readonly import ReadOnlyAdminMixin

from .models import App, ConfigVar, Formation, Release


@admin.register(App)
class AppAdmin(AuditedModelAdmin):
    list_display = ["name", "organization", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "organization__slug", "description"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    autocomplete_fields = ["organization"]
    # Routing settings change through routing.services.app_routing_update (the API and the dashboard),
    # which records them and has the worker push the routes at once.
    readonly_fields = ["https_only", "drain_timeout_s", "created_by", "created_at", "updated_at"]
    list_select_related = ["organization", "created_by"]


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """What an app runs, shown on its page; changed only through the API's services."""

    extra = 0
    can_delete = False


class ReleaseInline(ReadOnlyInline):
    model = Release
    # Never `config`: the snapshot holds the tenant's secret values (docs/architecture.md#invariants).
    readonly_fields = fields = ("version", "image", "image_digest", "description", "author", "created_at")
    show_change_link = True
    ordering = ["-version"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


class FormationInline(ReadOnlyInline):
    model = Formation
    verbose_name_plural = "formation"
    readonly_fields = fields = ("process_type", "quantity", "size", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("size")


class ConfigVarInline(ReadOnlyInline):
    model = ConfigVar
    verbose_name_plural = "config vars (keys only: the values are the tenant's secrets)"
    readonly_fields = fields = ("key", "updated_at")


AppAdmin.inlines = [FormationInline, ConfigVarInline, ReleaseInline]


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Releases are immutable; the page shows which config keys a release has, never their values."""

    list_display = ["app", "version", "image", "image_digest", "description", "author", "created_at"]
    search_fields = ["app__name", "app__organization__slug", "image", "image_digest"]
    list_select_related = ["app__organization", "author"]
    readonly_fields = fields = (
        "app",
        "version",
        "image",
        "image_digest",
        "process_types",
        "config_keys",
        "description",
        "author",
        "rollback_of",
        "created_at",
    )
    show_full_result_count = False

    @admin.display(description="config keys")
    def config_keys(self, release):
        return ", ".join(sorted(release.config)) or "-"
