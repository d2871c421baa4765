from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "berth.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy"
