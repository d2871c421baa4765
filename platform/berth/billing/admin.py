"""Console pages for billing: prices, quotas, invoices and the usage ledger."""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils import timezone

from berth.console.audited import AuditedModelAdmin
from berth.console.readonly import ReadOnlyAdminMixin

from . import services
from .models import Invoice, InvoiceLine, Quota, SizePrice, UsageRecord


class SizePriceForm(forms.ModelForm):
    class Meta:
        model = SizePrice
        fields = ["size", "price_per_hour", "currency", "effective_from"]

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        if value < timezone.now() - services.PAST_TOLERANCE:
            raise forms.ValidationError("A price change applies from now or later; past usage keeps its price.")
        return value


@admin.register(SizePrice)
class SizePriceAdmin(AuditedModelAdmin):
    """Prices are added, never edited: a change applies from its moment on."""

    form = SizePriceForm

    list_display = ["size", "price_per_hour", "currency", "effective_from", "created_by", "created_at"]
    list_filter = ["size", "currency"]
    fields = ["size", "price_per_hour", "currency", "effective_from"]
    list_select_related = ["size", "created_by"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.size_price_set(
            actor=request.user,
            size=obj.size,
            price_per_hour=obj.price_per_hour,
            effective_from=obj.effective_from,
            currency=obj.currency,
        )
        obj.pk = saved.pk

    def log_addition(self, request, obj, message):
        # The service recorded the change in Berth's audit log; only Django's own log remains.
        return admin.ModelAdmin.log_addition(self, request, obj, message)


@admin.register(Quota)
class QuotaAdmin(AuditedModelAdmin):
    list_display = ["organization", "max_apps", "max_containers", "max_memory_mb"]
    search_fields = ["organization__slug"]
    autocomplete_fields = ["organization"]
    list_select_related = ["organization"]


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = fields = (
        "app_name",
        "process_type",
        "size_name",
        "price_per_hour",
        "seconds",
        "amount",
        "adjustment_for",
    )


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Invoices are made by the worker from the ledger; the console only reads them."""

    list_display = [
        "organization",
        "period",
        "state",
        "total",
        "currency",
        "line_count",
        "generated_at",
        "finalized_at",
    ]
    list_filter = ["state", "period"]
    search_fields = ["organization__slug"]
    date_hierarchy = "period"
    inlines = [InvoiceLineInline]
    readonly_fields = ["organization", "period", "state", "currency", "total", "generated_at", "finalized_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization").annotate(line_count=Count("lines"))

    @admin.display(ordering="line_count", description="lines")
    def line_count(self, obj):
        return obj.line_count


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The ledger, read-only: every interval of every container, with its price."""

    list_display = [
        "organization",
        "app_name",
        "process_type",
        "size_name",
        "price_per_hour",
        "started_at",
        "ended_at",
        "period",
        "invoice",
    ]
    list_filter = ["period", "process_type", "size_name", ("ended_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__slug", "app_name"]
    date_hierarchy = "started_at"
    list_select_related = ["organization", "invoice"]
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if hasattr(response, "context_data") and "cl" in response.context_data:
            totals = response.context_data["cl"].queryset.aggregate(
                records=Count("id"), orgs=Count("organization", distinct=True)
            )
            response.context_data["subtitle"] = f"{totals['records']} records, {totals['orgs']} organizations"
        return response
