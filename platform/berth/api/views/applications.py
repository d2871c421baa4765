"""Apps of an organization."""

import django_filters
from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from berth.applications import services
from berth.applications.models import App
from berth.routing.services import app_routing_update
from berth.tenancy.roles import Action

from .. import serializers
from ..filters import UtcDateTimeFilter
from .base import OrganizationScopedViewSet


class AppFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", max_length=30, help_text="Part of the app's name."
    )
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = App
        fields = ["search", "created_after"]


class AppViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """An organization's apps, addressed by name."""

    queryset = App.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.AppSerializer
    lookup_field = "name"
    lookup_url_kwarg = "app_name"
    filterset_class = AppFilter
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    required_actions = {
        "list": Action.APP_VIEW,
        "retrieve": Action.APP_VIEW,
        "create": Action.APP_CREATE,
        "partial_update": Action.APP_UPDATE,
        "destroy": Action.APP_DELETE,
    }

    def get_queryset(self):
        return self.scoped(App).select_related("organization", "created_by", "current_release")

    @extend_schema(responses=serializers.AppDetailSerializer)
    def retrieve(self, request, org_slug=None, app_name=None):
        """One app, with the release it runs, the one Berth is moving it to, and what runs per process type."""
        return Response(serializers.AppDetailSerializer(self.get_object()).data)

    @extend_schema(request=serializers.AppCreateSerializer, responses={201: serializers.AppSerializer})
    def create(self, request, org_slug=None):
        data = serializers.AppCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app = services.app_create(actor=request.user, organization=self.organization, **data.validated_data)
        return Response(self.get_serializer(app).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.AppUpdateSerializer)
    def partial_update(self, request, org_slug=None, app_name=None):
        """Change the description and how the app is routed (`https_only`, `drain_timeout_s`); a field
        left out keeps its value, and a refused one changes nothing."""
        app = self.get_object()
        data = serializers.AppUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        routing = {name: fields[name] for name in ("https_only", "drain_timeout_s") if name in fields}
        with transaction.atomic():
            if routing:
                app_routing_update(actor=request.user, app=app, **routing)
            if "description" in fields:
                services.app_update(actor=request.user, app=app, description=fields["description"])
        return Response(self.get_serializer(app).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None, app_name=None):
        services.app_delete(actor=request.user, app=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
