"""An organization's logins to image registries, used when its hosts pull its apps' images."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from berth.applications import registries
from berth.applications.models import RegistryCredential
from berth.tenancy.roles import Action

from .. import serializers
from .base import OrganizationScopedViewSet


class RegistryCredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Registry logins of an organization, one per registry. POST stores one, replacing the registry's
    previous login; the password is write-only and never shown again."""

    queryset = RegistryCredential.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.RegistryCredentialSerializer
    required_actions = {
        "list": Action.REGISTRY_VIEW,
        "retrieve": Action.REGISTRY_VIEW,
        "create": Action.REGISTRY_MANAGE,
        "destroy": Action.REGISTRY_MANAGE,
    }

    def get_queryset(self):
        return self.scoped(RegistryCredential).defer("password")

    @extend_schema(
        request=serializers.RegistryCredentialSetSerializer,
        responses={201: serializers.RegistryCredentialSerializer, 200: serializers.RegistryCredentialSerializer},
    )
    def create(self, request, org_slug=None):
        data = serializers.RegistryCredentialSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        credential, created = registries.registry_credential_set(
            actor=request.user, organization=self.organization, **data.validated_data
        )
        return Response(
            self.get_serializer(credential).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None, pk=None):
        registries.registry_credential_delete(actor=request.user, credential=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
