"""The fleet, for operators (staff): Docker hosts and container sizes. Tenants may list sizes."""

from django.db.models import Count, Q, Sum
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response

from berth.fleet import services
from berth.fleet.models import Container, DockerHost, Size

from .. import serializers


class IsOperator(permissions.BasePermission):
    message = "Only operators may manage the fleet."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_staff and request.user.is_active)


class SizeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Container sizes: every user may list them; operators add them."""

    queryset = Size.objects.all()
    serializer_class = serializers.SizeSerializer
    pagination_class = None

    def get_permissions(self):
        extra = [IsOperator()] if self.action == "create" else []
        return [permissions.IsAuthenticated(), *extra]

    @extend_schema(request=serializers.SizeCreateSerializer, responses={201: serializers.SizeSerializer})
    def create(self, request):
        data = serializers.SizeCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        size = services.size_create(actor=request.user, **data.validated_data)
        return Response(serializers.SizeSerializer(size).data, status=status.HTTP_201_CREATED)


class DockerHostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Docker hosts. Registering answers at once; the worker checks the engine and fills in its version."""

    serializer_class = serializers.DockerHostSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]

    def get_queryset(self):
        live = Q(containers__state__in=Container.LIVE)
        return DockerHost.objects.annotate(
            containers_running=Count("containers", filter=live),
            memory_used_mb=Sum("containers__size__memory_mb", filter=live, default=0),
        ).order_by("name")

    @extend_schema(request=serializers.DockerHostCreateSerializer, responses={201: serializers.DockerHostSerializer})
    def create(self, request):
        data = serializers.DockerHostCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.host_register(actor=request.user, **data.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=host.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.DockerHostUpdateSerializer)
    def partial_update(self, request, pk=None):
        host = self.get_object()
        data = serializers.DockerHostUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.host_set_state(actor=request.user, host=host, state=data.validated_data["state"])
        return Response(self.get_serializer(self.get_queryset().get(pk=host.pk)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.host_remove(actor=request.user, host=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
