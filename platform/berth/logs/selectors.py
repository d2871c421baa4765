"""Reading an app's logs: whose app it is and which of its lines a reader gets (docs/logs.md#reading-logs)."""

import redis
from django.contrib.auth.models import AnonymousUser

from berth.applications.models import App
from berth.core.errors import Forbidden, NotFound, Unavailable
from berth.tenancy.models import User
from berth.tenancy.roles import Action, role_allows
from berth.tenancy.selectors import membership_in

from . import store
from .lines import LogLine
from .query import LogQuery


def app_for_logs(*, actor: User | AnonymousUser, organization_slug: str, app_name: str) -> App:
    """The app whose logs the actor may read, for a door that does not resolve it itself (the live tail).

    As everywhere: another organization, or an app that does not exist, is a 404; a member whose role
    may not read logs gets a 403 (the billing role), before the app's name is even looked at.
    """
    membership = membership_in(actor, organization_slug)
    if membership is None:
        raise NotFound("Not found.")
    if not role_allows(membership.role, Action.LOG_VIEW):
        raise Forbidden("Your role in this organization does not allow this.")
    app = (
        App.objects.for_actor(actor, Action.LOG_VIEW)
        .filter(organization=membership.organization, name=app_name)
        .first()
        if len(app_name) <= 30
        else None
    )
    if app is None:
        raise NotFound("Not found.")
    return app


def app_log_lines(app: App, query: LogQuery) -> list[LogLine]:
    """The app's newest lines that match the query, oldest first. A store that does not answer is a 503."""
    try:
        return store.recent(app.pk, lines=query.lines, since=query.since, where=query.where)
    except redis.RedisError:
        raise Unavailable("The log store does not answer; try again shortly.") from None


def app_log_newest_id(app: App) -> str:
    """The id of the app's newest stored line ("0-0" for none): where a live view that shows none yet starts."""
    try:
        return store.last_id(app.pk)
    except redis.RedisError:
        raise Unavailable("The log store does not answer; try again shortly.") from None
