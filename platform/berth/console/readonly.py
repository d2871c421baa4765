"""Console pages that only read: rows written by services and the worker, never edited by hand."""


class ReadOnlyAdminMixin:
    """For a ModelAdmin or an inline: no add, change or delete, whatever the operator's permissions."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
