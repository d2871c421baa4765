from django.contrib import admin

from berth.console.audited import AuditedModelAdmin

from .models import App


@admin.register(App)
class AppAdmin(AuditedModelAdmin):
    list_display = ["name", "organization", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "organization__slug", "description"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    list_select_related = ["organization", "created_by"]
