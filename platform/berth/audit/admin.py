from django.contrib import admin

from berth.console.readonly import ReadOnlyAdminMixin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The whole installation's audit log, read-only."""

    list_display = ["created_at", "actor_email", "organization_slug", "action", "target_repr", "source", "ip_address"]
    list_filter = ["source", "action", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_email", "organization_slug", "action", "target_repr", "target_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
