"""An organization's audit log, for its owners and admins."""

import django_filters
from rest_framework import mixins

from berth.audit.models import AuditEvent
from berth.tenancy.roles import Action

from .. import serializers
from ..filters import UtcDateTimeFilter
from .base import OrganizationScopedViewSet


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(max_length=64)
    actor = django_filters.CharFilter(field_name="actor_email", lookup_expr="iexact", max_length=254)
    target_type = django_filters.CharFilter(max_length=64)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "target_type", "since", "until"]


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """What happened in the organization, newest first."""

    queryset = AuditEvent.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.AuditEventSerializer
    filterset_class = AuditEventFilter
    required_actions = {"list": Action.AUDIT_VIEW, "retrieve": Action.AUDIT_VIEW}

    def get_queryset(self):
        return self.scoped(AuditEvent)
