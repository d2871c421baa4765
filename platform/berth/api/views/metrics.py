"""An app's metrics (docs/metrics.md): its replicas' CPU, memory and restarts, and its requests."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from berth.metrics.models import ContainerBucket
from berth.metrics.selectors import PERIODS, app_metrics, parse_metrics_period
from berth.tenancy.roles import Action

from .. import serializers
from .base import AppScopedViewSet


class MetricsViewSet(AppScopedViewSet):
    """The app's figures over the last hour, day or week, a point per minute, five minutes or hour."""

    queryset = ContainerBucket.objects.none()
    serializer_class = serializers.AppMetricsSerializer
    pagination_class = None  # one document per app and period
    filter_backends = []
    required_actions = {"read": Action.APP_VIEW}

    @extend_schema(
        parameters=[OpenApiParameter("period", OpenApiTypes.STR, enum=list(PERIODS), description="hour by default")],
        responses=serializers.AppMetricsSerializer,
    )
    def read(self, request, org_slug=None, app_name=None):
        period = parse_metrics_period(request.query_params.get("period"))
        report = app_metrics(app=self.app, period=period, now=timezone.now())
        return Response(serializers.AppMetricsSerializer(report).data)
