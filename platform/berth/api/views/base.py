"""Base views: every route under /orgs/<slug>/ resolves the organization from the URL and the actor."""

from functools import cached_property

from rest_framework import permissions, viewsets
from rest_framework.exceptions import NotFound

from berth.tenancy.models import Membership
from berth.tenancy.roles import Action
from berth.tenancy.selectors import membership_in

from ..permissions import HasOrganizationAction


class OrganizationScopedViewSet(viewsets.GenericViewSet):
    """A view of one organization's objects. `required_actions` maps each view action to a role action."""

    permission_classes = [permissions.IsAuthenticated, HasOrganizationAction]
    required_actions: dict[str, str] = {}
    lookup_value_regex = r"[^/]+"

    @cached_property
    def membership(self) -> Membership:
        """The actor's membership in the URL's organization; a foreign or unknown slug is the same 404."""
        slug = self.kwargs["org_slug"]
        membership = membership_in(self.request.user, slug)
        if membership is None:
            raise NotFound("Not found.")
        return membership

    @property
    def organization(self):
        return self.membership.organization

    def scoped(self, model):
        """Rows of `model` the actor may act on here, through the one scoping method."""
        action = self.required_actions[self.action]
        return model.objects.for_actor(self.request.user, action).filter(organization=self.organization)


class AppScopedViewSet(OrganizationScopedViewSet):
    """A view of one app's objects, at /orgs/<slug>/apps/<name>/…; an unknown app is a 404."""

    @cached_property
    def app(self):
        from berth.applications.models import App

        name = self.kwargs["app_name"]
        app = (
            App.objects.for_actor(self.request.user, Action.APP_VIEW)
            .filter(organization=self.organization, name=name)
            .select_related("organization", "current_release")
            .first()
            if len(name) <= 30
            else None
        )
        if app is None:
            raise NotFound("Not found.")
        return app

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.app  # noqa: B018 - resolve the app before any handler, so a wrong name is a 404 everywhere
