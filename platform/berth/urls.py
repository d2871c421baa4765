"""Berth's URL map: the tenant API, its schema and docs, the operator console and the tenant dashboard."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from berth.api.errors import not_found_view
from berth.core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("berth.api.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("console/", admin.site.urls),
    # Unknown API paths answer in the API's error shape, in development too.
    re_path(r"^api/", not_found_view),
    path("", include("berth.dashboard.urls")),
]

handler404 = "berth.api.errors.not_found_view"
handler500 = "berth.api.errors.server_error_view"
