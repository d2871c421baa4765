"""Organizations, their members and invitations."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from berth.tenancy import selectors, services
from berth.tenancy.models import Invitation, Membership, Organization
from berth.tenancy.roles import Action, role_allows

from .. import serializers
from .base import OrganizationScopedViewSet


class OrganizationViewSet(OrganizationScopedViewSet):
    """Organizations the user belongs to, with the user's role in each."""

    queryset = Organization.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.OrganizationSerializer
    # Listing and creating name no organization; the others check the role in get_object.
    permission_classes = [permissions.IsAuthenticated]
    lookup_field = "slug"
    lookup_url_kwarg = "org_slug"
    required_actions = {
        "list": Action.ORG_VIEW,
        "retrieve": Action.ORG_VIEW,
        "partial_update": Action.ORG_UPDATE,
        "destroy": Action.ORG_DELETE,
    }

    def get_queryset(self):
        return selectors.organizations_of(self.request.user)

    def get_object(self):
        # Same 404 for a slug that does not exist and one the user is not a member of.
        membership = self.membership
        if not role_allows(membership.role, Action.ORG_VIEW):
            raise NotFound("Not found.")
        if not role_allows(membership.role, self.required_actions[self.action]):
            self.permission_denied(self.request, message="Your role in this organization does not allow this.")
        organization = membership.organization
        organization.role = membership.role
        return organization

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, org_slug=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request=serializers.OrganizationCreateSerializer, responses={201: serializers.OrganizationSerializer}
    )
    def create(self, request):
        data = serializers.OrganizationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.organization_create(actor=request.user, **data.validated_data)
        organization.role = selectors.role_of(request.user, organization)
        return Response(self.get_serializer(organization).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.OrganizationUpdateSerializer)
    def partial_update(self, request, org_slug=None):
        organization = self.get_object()
        data = serializers.OrganizationUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.organization_update(actor=request.user, organization=organization, **data.validated_data)
        return Response(self.get_serializer(organization).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None):
        services.organization_delete(actor=request.user, organization=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Members of an organization and their roles. Any member may remove themselves."""

    queryset = Membership.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.MembershipSerializer
    required_actions = {
        "list": Action.MEMBER_VIEW,
        "retrieve": Action.MEMBER_VIEW,
        "partial_update": Action.MEMBER_MANAGE,
        # Leaving is allowed to every member; removing someone else is checked by the service.
        "destroy": Action.MEMBER_VIEW,
    }

    def get_queryset(self):
        return self.scoped(Membership).select_related("user")

    @extend_schema(request=serializers.MembershipUpdateSerializer)
    def partial_update(self, request, org_slug=None, pk=None):
        membership = self.get_object()
        data = serializers.MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_update_role(actor=request.user, membership=membership, **data.validated_data)
        return Response(self.get_serializer(membership).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None, pk=None):
        services.membership_remove(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Pending and accepted invitations to an organization. DELETE revokes a pending one."""

    queryset = Invitation.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.InvitationSerializer
    required_actions = {
        "list": Action.MEMBER_MANAGE,
        "retrieve": Action.MEMBER_MANAGE,
        "create": Action.MEMBER_MANAGE,
        "destroy": Action.MEMBER_MANAGE,
    }

    def get_queryset(self):
        return self.scoped(Invitation).select_related("invited_by")

    @extend_schema(
        request=serializers.InvitationCreateSerializer, responses={201: serializers.InvitationCreatedSerializer}
    )
    def create(self, request, org_slug=None):
        data = serializers.InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, token = services.invitation_create(
            actor=request.user, organization=self.organization, **data.validated_data
        )
        invitation.token = token
        return Response(serializers.InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, org_slug=None, pk=None):
        services.invitation_revoke(actor=request.user, invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
