"""Console pages for routing: the hostnames tenants added to their apps, installation-wide."""

from django.contrib import admin

from berth.console.readonly import ReadOnlyAdminMixin

from .models import Domain


@admin.register(Domain)
class DomainAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: tenants add and remove their hostnames through the API and the dashboard
    (`routing.services`); the console shows which app, of which organization, has each one."""

    list_display = ["hostname", "app_name", "organization", "created_by", "created_at"]
    search_fields = ["hostname", "app__name", "app__organization__slug"]
    list_select_related = ["app__organization", "created_by"]
    readonly_fields = fields = ("hostname", "app", "created_by", "created_at")
    show_full_result_count = False

    @admin.display(ordering="app__name", description="app")
    def app_name(self, domain):
        return domain.app.name

    @admin.display(ordering="app__organization__slug", description="organization")
    def organization(self, domain):
        return domain.app.organization.slug
