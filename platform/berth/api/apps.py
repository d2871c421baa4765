from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "berth.api"
    label = "api"
    verbose_name = "Tenant REST API"

    def ready(self):
        from . import schema  # noqa: F401  (registers the schema extensions)
