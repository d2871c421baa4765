"""Request and response shapes of the tenant API. Serializers validate; services decide."""

from django.utils import timezone
from rest_framework import serializers

from berth.applications.models import App
from berth.audit.models import AuditEvent
from berth.core.validators import slug_validator
from berth.tenancy.models import ApiToken, Invitation, Membership, Organization, User
from berth.tenancy.roles import Role


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo is an error instead of a silent no-op."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
            if unknown:
                raise serializers.ValidationError({name: ["This field is not accepted here."] for name in unknown})
        return super().to_internal_value(data)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "date_joined"]
        read_only_fields = ["id", "email", "date_joined"]


class MeUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, allow_blank=True)


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="Your role in this organization.")

    class Meta:
        model = Organization
        fields = ["slug", "name", "role", "created_at"]
        read_only_fields = ["created_at"]


class OrganizationCreateSerializer(StrictSerializer):
    slug = serializers.CharField(max_length=40, validators=[slug_validator])
    name = serializers.CharField(max_length=100)


class OrganizationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]


class MembershipUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at"]


class InvitationCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreatedSerializer(InvitationSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown only in this response.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]


class InvitationAcceptSerializer(StrictSerializer):
    token = serializers.CharField(max_length=200)


class ApiTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown only in this response; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class AppSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = App
        fields = ["name", "organization", "description", "created_by", "created_at", "updated_at"]


class AppCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=30, validators=[slug_validator])
    description = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class AppUpdateSerializer(StrictSerializer):
    description = serializers.CharField(max_length=500, allow_blank=True)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_email", read_only=True)
    organization = serializers.CharField(source="organization_slug", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "organization",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "source",
            "ip_address",
            "changes",
        ]
