from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "berth.routing"
    default_auto_field = "django.db.models.BigAutoField"
