"""Shared reads of apps."""

from berth.tenancy.roles import Action

from .models import App


def apps_for_actor(actor, action: str = Action.APP_VIEW):
    return App.objects.for_actor(actor, action).select_related("organization", "created_by")
