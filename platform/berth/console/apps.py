from django.contrib.admin.apps import AdminConfig


class ConsoleConfig(AdminConfig):
    """Django's admin, installed with Berth's own site so the console has its name and rules."""

    default_site = "berth.console.site.ConsoleSite"
    verbose_name = "Console"
