"""Who may open a dashboard page: the one role table and the one scoping, as the API has them.

Every view under /orgs/<slug>/ is wrapped in `org_page(action)`. It resolves the organization from
the URL through `membership_in` (a foreign or unknown slug is the same 404 as in the API), then checks
the role table: a missing right is a 403 page that names the roles that have it. The wrapped view
gets the membership; `app_of` resolves an app the same way.
"""

from collections.abc import Callable
from functools import wraps
from typing import cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from berth.applications.models import App
from berth.tenancy.models import Membership, User
from berth.tenancy.roles import Action, Role, role_allows, roles_allowing
from berth.tenancy.selectors import membership_in

View = Callable[..., HttpResponse]


def needed_roles(action: str) -> str:
    """The roles allowed `action`, as a sentence: "owner, admin or billing"."""
    labels = [Role(role).label.lower() for role in roles_allowing(action)]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def require(membership: Membership, action: str) -> None:
    """Refuse with a 403 that says which role is needed, unless the member's role allows `action`."""
    if not role_allows(membership.role, action):
        raise PermissionDenied(f"This needs the role {needed_roles(action)}; your role here is {membership.role}.")


def org_page(action: str) -> Callable[[View], View]:
    """A view of one organization: `view(request, membership, *args)` after the 404 and 403 checks."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, org_slug: str, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_in(request.user, org_slug)
            if membership is None:
                raise Http404("No such organization.")
            request.membership = membership  # type: ignore[attr-defined]  # read by the context processor
            require(membership, action)
            return view(request, membership, *args, **kwargs)

        # Read by the tests that derive each route's rule from the URL map (tests/dashboard/test_access.py).
        wrapper.required_action = action  # type: ignore[attr-defined]
        return wrapper

    return decorator


def actor(request: HttpRequest) -> User:
    """The signed-in person making the request: `org_page` and `login_required` let no one else through."""
    return cast(User, request.user)


def app_of(request: HttpRequest, membership: Membership, name: str) -> App:
    """The organization's app with this name, through the one scoping; an unknown name is a 404."""
    app = (
        App.objects.for_actor(request.user, Action.APP_VIEW)
        .filter(organization=membership.organization, name=name)
        .select_related("organization", "current_release")
        .first()
        if len(name) <= 30
        else None
    )
    if app is None:
        raise Http404("No such app.")
    return app


class Can:
    """What the member's role allows, for templates: `can.app_deploy` is `role_allows(role, "app.deploy")`.

    Templates use it to leave out controls a role may not use; the views refuse them anyway.
    """

    def __init__(self, role: str | None):
        self.role = role

    def __getattr__(self, name: str) -> bool:
        action = name.replace("_", ".", 1)
        if action not in Action.values:
            raise AttributeError(name)
        return role_allows(self.role, action)
