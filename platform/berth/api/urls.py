"""Routes of the tenant API, /api/v1/."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from .views import (
    account,
    applications,
    audit,
    billing,
    deployments,
    fleet,
    logs,
    metrics,
    organizations,
    registries,
    routing,
)

router = SimpleRouter()
router.register("tokens", account.ApiTokenViewSet, basename="token")
router.register("orgs", organizations.OrganizationViewSet, basename="organization")
ORG = r"orgs/(?P<org_slug>[^/]+)"
router.register(f"{ORG}/members", organizations.MembershipViewSet, basename="membership")
router.register(f"{ORG}/invitations", organizations.InvitationViewSet, basename="invitation")
router.register(f"{ORG}/apps", applications.AppViewSet, basename="app")
router.register(f"{ORG}/audit-events", audit.AuditEventViewSet, basename="audit-event")
router.register(f"{ORG}/registry-credentials", registries.RegistryCredentialViewSet, basename="registry-credential")
APP = rf"{ORG}/apps/(?P<app_name>[^/]+)"
router.register(f"{APP}/releases", deployments.ReleaseViewSet, basename="release")
router.register(f"{APP}/deployments", deployments.DeploymentViewSet, basename="deployment")
router.register(f"{APP}/containers", deployments.ContainerViewSet, basename="container")
router.register(f"{APP}/domains", routing.DomainViewSet, basename="domain")
router.register(f"{APP}/runs", deployments.RunViewSet, basename="run")
router.register(f"{ORG}/invoices", billing.InvoiceViewSet, basename="invoice")
router.register("sizes", fleet.SizeViewSet, basename="size")
router.register("fleet/hosts", fleet.DockerHostViewSet, basename="host")
router.register("fleet/routers", fleet.RouterViewSet, basename="router")

# Config and formation are one document each per app: GET reads it, PATCH changes part of it.
config = deployments.ConfigViewSet.as_view({"get": "read", "patch": "partial_update_all"})
formation = deployments.FormationViewSet.as_view({"get": "list", "patch": "partial_update_all"})
# An app has at most one active canary: one document, and two actions on it.
canary = deployments.CanaryViewSet.as_view({"get": "read", "patch": "partial_update_all"})
canary_promote = deployments.CanaryViewSet.as_view({"post": "promote"})
canary_abort = deployments.CanaryViewSet.as_view({"post": "abort"})
usage = billing.UsageViewSet.as_view({"get": "read"})
quota = billing.QuotaViewSet.as_view({"get": "read"})
app_metrics = metrics.MetricsViewSet.as_view({"get": "read"})
# The recent lines through DRF; the live tail is an async view outside it, served by the ASGI web process.
log_lines = logs.LogViewSet.as_view({"get": "list"})

urlpatterns = [
    path("me/", account.MeView.as_view(), name="me"),
    path("invitations/accept/", account.InvitationAcceptView.as_view(), name="invitation-accept"),
    re_path(rf"^{APP}/config/$", config, name="config"),
    re_path(rf"^{APP}/formation/$", formation, name="formation"),
    re_path(rf"^{APP}/canary/$", canary, name="canary"),
    re_path(rf"^{APP}/canary/promote/$", canary_promote, name="canary-promote"),
    re_path(rf"^{APP}/canary/abort/$", canary_abort, name="canary-abort"),
    re_path(rf"^{APP}/metrics/$", app_metrics, name="metrics"),
    re_path(rf"^{APP}/logs/$", log_lines, name="logs"),
    re_path(rf"^{APP}/logs/stream/$", logs.LogStreamView.as_view(), name="log-stream"),
    re_path(rf"^{ORG}/usage/$", usage, name="usage"),
    re_path(rf"^{ORG}/quota/$", quota, name="quota"),
    *router.urls,
]
