"""An app's releases: its history with what each release changed, and rolling back to an earlier one.

A rollback goes through `deployments.services.release_rollback`, the API's service, with the version
parsed by the API's serializer; the deployment it queues is followed on the app's overview.
"""

from typing import cast

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from berth.api.serializers import RollbackSerializer
from berth.applications.models import App, Release
from berth.core.errors import BerthError, NotFound
from berth.deployments import services
from berth.deployments.selectors import release_diff, release_page, target_release
from berth.tenancy.models import Membership, User
from berth.tenancy.roles import Action

from ..access import app_of, org_page

PER_PAGE = 25


@org_page(Action.APP_VIEW)
def release_list(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """The app's releases, newest first, each with what it changed from the one before it."""
    app = app_of(request, membership, app_name)
    history = release_page(app, request.GET.get("page"), per_page=PER_PAGE)
    return render(request, "dashboard/releases/list.html", {"app": app, "history": history})


@org_page(Action.APP_DEPLOY)
def rollback(request: HttpRequest, membership: Membership, app_name: str, version: int) -> HttpResponse:
    """GET: what rolling back to `version` changes, with the button. POST: roll back, as the API does."""
    app = app_of(request, membership, app_name)
    to = _release(app, version)
    if request.method != "POST":
        return _confirm(request, app, to)
    try:  # org_page lets only a signed-in person through
        release, _ = services.release_rollback(actor=cast(User, request.user), app=app, version=to.version)
    except NotFound:
        raise Http404("No such release.") from None
    except BerthError as error:
        return _confirm(request, app, to, error=error.message, status=400)
    messages.success(request, f"Rolling back to v{to.version}: release v{release.version} is being deployed.")
    return redirect("dashboard:app", membership.organization.slug, app.name)


def _release(app: App, version: int) -> Release:
    """The app's release `version`, parsed as the API parses it; a version it would refuse is a 404."""
    data = RollbackSerializer(data={"version": version})
    found = app.releases.filter(version=data.validated_data["version"]).first() if data.is_valid() else None
    if found is None:
        raise Http404("No such release.")
    return found


def _confirm(request: HttpRequest, app: App, to: Release, *, error: str = "", status: int = 200) -> HttpResponse:
    """The confirm step: what the app moves from (the release being deployed, or else the one that runs)
    and what changes, by name only."""
    now = target_release(app)
    context = {
        "app": app,
        "to": to,
        "now": now,
        "changes": release_diff(now, to) if now is not None else None,
        "error": error,
    }
    return render(request, "dashboard/releases/rollback.html", context, status=status)
