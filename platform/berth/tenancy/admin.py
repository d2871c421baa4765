"""Console pages for people, organizations, memberships, invitations and tokens."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.utils import timezone

from berth.console.audited import AuditedModelAdmin

from . import services
from .models import ApiToken, Invitation, Membership, Organization, User
from .roles import Role
from .selectors import membership_is_last_owner


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_active", "is_superuser"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        ("Operator access", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if self.instance.pk and role != Role.OWNER and membership_is_last_owner(self.instance):
            raise forms.ValidationError("An organization must keep at least one owner.")
        return role


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    # Explicit: the count annotations below drop the model's default ordering, and the
    # autocomplete pages through this list.
    ordering = ["slug"]
    list_display = ["slug", "name", "member_count", "app_count", "created_at", "created_by"]
    search_fields = ["slug", "name", "memberships__user__email"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    readonly_fields = ["created_at", "created_by"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("memberships", distinct=True), app_count=Count("apps", distinct=True))
            .select_related("created_by")
        )

    @admin.display(ordering="member_count", description="members")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(ordering="app_count", description="apps")
    def app_count(self, obj):
        return obj.app_count


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    form = MembershipForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a membership to another person or organization would bypass the owner rules:
        # remove it and invite instead.
        return ["user", "organization", "created_at"] if obj is not None else ["created_at"]

    def save_model(self, request, obj, form, change):
        if change and "role" in form.changed_data:
            # The service re-checks the last-owner rule under a lock and records the change.
            services.membership_update_role(actor=request.user, membership=obj, role=obj.role, as_operator=True)
        else:
            super().save_model(request, obj, form, change)

    def log_change(self, request, obj, message):
        # Role changes are audited by the service; only Django's own log remains to be written.
        return admin.ModelAdmin.log_change(self, request, obj, message)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and membership_is_last_owner(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # Bulk deletion could remove every owner at once; members are removed one at a time.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(Invitation)
class InvitationAdmin(AuditedModelAdmin):
    list_display = ["email", "organization", "role", "invited_by", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", ("accepted_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "organization__slug"]
    exclude = ["token_digest"]
    readonly_fields = ["organization", "email", "role", "invited_by", "created_at", "accepted_at", "accepted_by"]
    list_select_related = ["organization", "invited_by"]

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    """Operators see and revoke tokens, never their secret (only a digest is stored)."""

    list_display = ["prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("expires_at", admin.EmptyFieldListFilter)]
    search_fields = ["key_id", "name", "user__email"]
    readonly_fields = fields = ("prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for api_token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke(actor=request.user, api_token=api_token)
        self.message_user(request, f"Revoked at {timezone.now():%H:%M:%S} UTC.", messages.SUCCESS)
