"""Routes of the tenant API, /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import account, applications, audit, organizations

router = SimpleRouter()
router.register("tokens", account.ApiTokenViewSet, basename="token")
router.register("orgs", organizations.OrganizationViewSet, basename="organization")
ORG = r"orgs/(?P<org_slug>[^/]+)"
router.register(f"{ORG}/members", organizations.MembershipViewSet, basename="membership")
router.register(f"{ORG}/invitations", organizations.InvitationViewSet, basename="invitation")
router.register(f"{ORG}/apps", applications.AppViewSet, basename="app")
router.register(f"{ORG}/audit-events", audit.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("me/", account.MeView.as_view(), name="me"),
    path("invitations/accept/", account.InvitationAcceptView.as_view(), name="invitation-accept"),
    *router.urls,
]
