"""Filters shared by API lists, and by the dashboard pages that list the same rows."""

from datetime import UTC

import django_filters
from django import forms

from berth.audit.models import AuditEvent


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time in any offset, compared in UTC.

    PostgreSQL accepts offsets up to ±15:59 while Python accepts up to ±23:59: converting first
    keeps an exotic offset from reaching the database (found by the schema fuzz run).
    """

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError("This time is out of range.") from None
        return super().filter(qs, value)


class AuditEventFilter(django_filters.FilterSet):
    """How an organization's audit log is filtered, for the API and the dashboard's audit page alike."""

    action = django_filters.CharFilter(max_length=64)
    actor = django_filters.CharFilter(field_name="actor_email", lookup_expr="iexact", max_length=254)
    target_type = django_filters.CharFilter(max_length=64)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "target_type", "since", "until"]
