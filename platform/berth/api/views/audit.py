"""An organization's audit log, for its owners and admins."""

from rest_framework import mixins

from berth.audit.models import AuditEvent
from berth.tenancy.roles import Action

from .. import serializers
from ..filters import AuditEventFilter
from .base import OrganizationScopedViewSet


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """What happened in the organization, newest first."""

    queryset = AuditEvent.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.AuditEventSerializer
    filterset_class = AuditEventFilter
    required_actions = {"list": Action.AUDIT_VIEW, "retrieve": Action.AUDIT_VIEW}

    def get_queryset(self):
        return self.scoped(AuditEvent)
