"""Every change an operator makes in the console is recorded in Berth's audit log too."""

from django.contrib import admin

from berth.audit.services import audit_record


def organization_of(obj):
    from berth.tenancy.models import Organization

    return obj if isinstance(obj, Organization) else getattr(obj, "organization", None)


class AuditedModelAdmin(admin.ModelAdmin):
    """Hooks Django's own change log, which the admin calls for every add, change and delete."""

    # The noun of the audit actions, when the services name the model differently ("host").
    audit_name = ""

    def _audit(self, request, obj, verb: str, message=None):
        action = f"{self.audit_name or obj._meta.model_name}.{verb}"
        # Django's change message names the changed fields, never their values.
        changes = {"console": message} if message else {}
        audit_record(actor=request.user, action=action, target=obj, organization=organization_of(obj), changes=changes)

    def log_addition(self, request, obj, message):
        self._audit(request, obj, "create", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(request, obj, "update", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, "delete")
        return super().log_deletions(request, queryset)
