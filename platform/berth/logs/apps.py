from django.apps import AppConfig


class LogsConfig(AppConfig):
    name = "berth.logs"
    default_auto_field = "django.db.models.BigAutoField"
