"""Usage, invoices and quota of an organization, for its owners, admins and billing members."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from berth.billing.models import Invoice
from berth.billing.money import parse_period
from berth.billing.quotas import limits_for, usage_of
from berth.billing.selectors import DEFAULT_GROUPS, GROUPS, invoice_of, invoices_of, usage_for_period
from berth.core.errors import Invalid
from berth.tenancy.roles import Action

from .. import serializers as api_serializers
from ..renderers import UsageCSVRenderer
from .base import OrganizationScopedViewSet


class UsageViewSet(OrganizationScopedViewSet):
    """What the organization's containers ran in a period, and what it costs so far."""

    queryset = Invoice.objects.none()
    serializer_class = api_serializers.UsageReportSerializer
    renderer_classes = [JSONRenderer, UsageCSVRenderer]
    pagination_class = None
    filter_backends = []
    required_actions = {"read": Action.BILLING_VIEW}

    @extend_schema(
        parameters=[
            OpenApiParameter("period", OpenApiTypes.STR, description="YYYY-MM; the current month by default"),
            OpenApiParameter("group_by", OpenApiTypes.STR, description=f"Comma-separated: {', '.join(GROUPS)}"),
        ],
        responses=api_serializers.UsageReportSerializer,
    )
    def read(self, request, org_slug=None):
        period = parse_period(request.query_params.get("period"), now=timezone.now())
        raw = request.query_params.get("group_by")
        groups = tuple(dict.fromkeys(g.strip() for g in raw.split(","))) if raw else DEFAULT_GROUPS
        unknown = [g for g in groups if g not in GROUPS]
        if unknown or len(raw or "x") > 100:
            raise Invalid(f"group_by takes {', '.join(GROUPS)}.", field="group_by")
        report = usage_for_period(
            organization_id=self.organization.pk, period=period, group_by=groups, now=timezone.now()
        )
        # Through the serializer, so money goes out as decimal strings, never as floats.
        response = Response(api_serializers.UsageReportSerializer(report).data)
        if request.accepted_renderer.format == "csv":
            name = f"usage-{self.organization.slug}-{report['period']}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Invoices by month: a draft while the month is open (to the moment, from its first usage on), final
    and unchanging after."""

    queryset = Invoice.objects.none()
    serializer_class = api_serializers.InvoiceSerializer
    lookup_field = "period"
    lookup_value_regex = r"\d{4}-\d{2}"
    filter_backends = []
    required_actions = {"list": Action.BILLING_VIEW, "retrieve": Action.BILLING_VIEW}

    def get_queryset(self):
        return self.scoped(Invoice)

    def get_serializer_class(self):
        return api_serializers.InvoiceDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    def list(self, request, org_slug=None):
        invoices = invoices_of(self.get_queryset(), organization_id=self.organization.pk, now=timezone.now())
        page = self.paginate_queryset(invoices)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def get_object(self):
        try:
            period = parse_period(self.kwargs["period"], now=timezone.now())
        except Invalid:
            raise NotFound("Not found.") from None  # a month that cannot exist has no invoice
        invoice = invoice_of(
            self.get_queryset(), organization_id=self.organization.pk, period=period, now=timezone.now()
        )
        if invoice is None:
            raise NotFound("Not found.")
        return invoice


class QuotaViewSet(OrganizationScopedViewSet):
    """The organization's limits and what its apps ask for now."""

    queryset = Invoice.objects.none()
    serializer_class = api_serializers.QuotaSerializer
    pagination_class = None
    filter_backends = []
    required_actions = {"read": Action.ORG_VIEW}

    @extend_schema(responses=api_serializers.QuotaSerializer)
    def read(self, request, org_slug=None):
        limits = limits_for(self.organization)
        used = usage_of(self.organization)
        return Response(
            {
                "max_apps": limits.max_apps,
                "max_containers": limits.max_containers,
                "max_memory_mb": limits.max_memory_mb,
                "apps": used["apps"],
                "containers": used["containers"],
                "memory_mb": used["memory_mb"],
            },
            status=status.HTTP_200_OK,
        )
