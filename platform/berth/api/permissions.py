"""Which role action each API operation needs, checked against the one role table."""

from rest_framework import permissions

from berth.tenancy.roles import role_allows


class HasOrganizationAction(permissions.BasePermission):
    """The actor's role in the URL's organization allows the view's required action.

    A non-member never gets here with a 403: resolving the organization answers 404 first.
    """

    message = "Your role in this organization does not allow this."

    def has_permission(self, request, view) -> bool:
        required = view.required_actions.get(view.action)
        if required is None:
            return False
        return role_allows(view.membership.role, required)
