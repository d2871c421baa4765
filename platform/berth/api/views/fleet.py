"""The fleet, for operators (staff): Docker hosts, routers and container sizes. Tenants may list sizes."""

from django.db.models import Count, Q, Sum
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response

from berth.fleet import services
from berth.fleet.models import Container, DockerHost, Router, Size
from berth.routing import services as routing

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


class RouterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Routers in front of the fleet. Registering answers at once; the worker's next pass (sent at once)
    gives the router the whole route table and fills in its status, capacity and routes."""

    queryset = Router.objects.order_by("name")
    serializer_class = serializers.RouterSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]

    @extend_schema(request=serializers.RouterCreateSerializer, responses={201: serializers.RouterSerializer})
    def create(self, request):
        """400 naming `admin_url` for an endpoint beyond this machine (HAProxy's runtime API has no
        credentials); 409 for a name taken."""
        data = serializers.RouterCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        router = routing.router_register(actor=request.user, **data.validated_data)
        return Response(self.get_serializer(router).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RouterUpdateSerializer)
    def partial_update(self, request, pk=None):
        router = self.get_object()
        data = serializers.RouterUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        router = routing.router_update(actor=request.user, router=router, **data.validated_data)
        return Response(self.get_serializer(router).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Berth forgets the router and stops keeping it in step; it serves what it holds until stopped."""
        routing.router_remove(actor=request.user, router=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
