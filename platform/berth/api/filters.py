"""Filters shared by API lists."""

from datetime import UTC

import django_filters
from django import forms


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
