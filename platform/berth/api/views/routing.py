"""An app's domains: the hostnames its tenant added, beside the one Berth gives it (the app's `hostname`).
Adding or removing one changes the routers through the worker, after the request."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from berth.core.errors import NotFound
from berth.routing import services
from berth.routing.models import Domain
from berth.tenancy.roles import Action

from .. import serializers
from .base import AppScopedViewSet


class DomainViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Hostnames added to an app, addressed by hostname. A hostname belongs to at most one app in the
    installation; names under the apps domain are Berth's (each app has its own there, its `hostname`)."""

    queryset = Domain.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.DomainSerializer
    lookup_field = "hostname"
    required_actions = {
        "list": Action.APP_VIEW,
        "retrieve": Action.APP_VIEW,
        "create": Action.DOMAIN_MANAGE,
        "destroy": Action.DOMAIN_MANAGE,
    }

    def get_queryset(self):
        return (
            Domain.objects.for_actor(self.request.user, self.required_actions[self.action])
            .filter(app=self.app)
            .select_related("created_by")
        )

    def retrieve(self, request, org_slug=None, app_name=None, hostname=None):
        # Hostnames are stored as domain_add normalizes them: WWW.Example.com. is www.example.com.
        domain = self.get_queryset().filter(hostname=services.normalize_hostname(hostname)).first()
        if domain is None:
            raise NotFound("Not found.")
        return Response(self.get_serializer(domain).data)

    @extend_schema(request=serializers.DomainCreateSerializer, responses={201: serializers.DomainSerializer})
    def create(self, request, org_slug=None, app_name=None):
        """Add a hostname: 400 naming `hostname` for one that is not valid or is under the apps domain,
        409 for one another app (of any organization) or this one has already."""
        data = serializers.DomainCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        domain = services.domain_add(actor=request.user, app=self.app, hostname=data.validated_data["hostname"])
        return Response(self.get_serializer(domain).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None, app_name=None, hostname=None):
        """Remove a hostname; the routers answer it with their 404 once the worker pushed the change. The
        app's own hostname cannot be removed (409)."""
        services.domain_remove_hostname(actor=request.user, app=self.app, hostname=hostname)
        return Response(status=status.HTTP_204_NO_CONTENT)
