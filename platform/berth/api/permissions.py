"""Which role action each API operation needs, checked against the one role table."""

from rest_framework import permissions

from berth.tenancy.roles import role_allows


class HasOrganizationAction(permissions.BasePermission):
    """The actor's role in the URL's organization allows the view's required action.

    A non-member never gets here with a 403: resolving the organization answers 404 first.
    """

    message = "Your role in this organization does not allow this."

    def has_permission(self, request, view) -> bool:
        membership = view.membership  # resolves the organization: 404 for non-members, before anything else
        if view.action in (None, "metadata"):
            return True  # a method this route does not serve answers 405; OPTIONS describes the route
        required = view.required_actions.get(view.action)
        return required is not None and role_allows(membership.role, required)
