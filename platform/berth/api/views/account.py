"""The current user, their API tokens, and accepting invitations: routes that belong to a person."""

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from berth.tenancy import services
from berth.tenancy.models import ApiToken, User
from berth.tenancy.selectors import api_tokens_of

from .. import serializers


class MeView(APIView):
    """The user making the request."""

    @extend_schema(responses=serializers.UserSerializer)
    def get(self, request):
        return Response(serializers.UserSerializer(request.user).data)

    @extend_schema(request=serializers.MeUpdateSerializer, responses=serializers.UserSerializer)
    def patch(self, request):
        data = serializers.MeUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "name" in data.validated_data:
            services.user_update_profile(actor=request.user, name=data.validated_data["name"])
        return Response(serializers.UserSerializer(request.user).data)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The requesting user's personal API tokens. DELETE revokes a token at once."""

    queryset = ApiToken.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.ApiTokenSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        # IsAuthenticated lets only a signed-in user this far.
        return api_tokens_of(cast(User, self.request.user))

    @extend_schema(request=serializers.ApiTokenCreateSerializer, responses={201: serializers.ApiTokenCreatedSerializer})
    def create(self, request):
        data = serializers.ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_token, plaintext = services.api_token_create(actor=request.user, **data.validated_data)
        api_token.token = plaintext
        return Response(serializers.ApiTokenCreatedSerializer(api_token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.api_token_revoke(actor=request.user, api_token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(APIView):
    """Join an organization with an invitation token sent to your email address."""

    @extend_schema(request=serializers.InvitationAcceptSerializer, responses={201: serializers.MembershipSerializer})
    def post(self, request):
        data = serializers.InvitationAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.invitation_accept(actor=request.user, token=data.validated_data["token"])
        return Response(serializers.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
