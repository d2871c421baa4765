from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "berth.applications"
    label = "applications"
    verbose_name = "Applications"
