"""The organization pages: where a signed-in person lands, creating an organization, its home."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from berth.tenancy.models import Membership
from berth.tenancy.roles import Action
from berth.tenancy.selectors import organizations_of

from ..access import org_page


def home(request: HttpRequest) -> HttpResponse:
    """`/`: the sign-in page for visitors; a member's first organization, or creating one, for people."""
    if not request.user.is_authenticated:
        return redirect("dashboard:signin")
    first = organizations_of(request.user).values_list("slug", flat=True).first()
    return redirect("dashboard:org-home", first) if first else redirect("dashboard:org-create")


def org_create(request, *args, **kwargs):
    raise Http404


@org_page(Action.ORG_VIEW)
def org_home(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(request, "dashboard/org_home.html", {})
