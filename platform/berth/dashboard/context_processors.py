"""What every dashboard page shows around its content: the organization, the role's rights, the switcher."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from berth.tenancy.selectors import organization_names_of

from .access import Can


def dashboard(request: HttpRequest) -> dict:
    membership = getattr(request, "membership", None)
    return {
        "membership": membership,
        "organization": membership.organization if membership else None,
        "can": Can(membership.role if membership else None),
        # Lazy: one query, only on pages that show the switcher, and not even built on the others (an htmx
        # update of part of a page): building the queryset cost half a millisecond.
        "my_organizations": SimpleLazyObject(lambda: organization_names_of(request.user)),
    }
