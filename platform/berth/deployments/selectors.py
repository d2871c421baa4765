"""Shared reads about deployments and an app's desired state (docs/deploys.md)."""

from collections import Counter
from datetime import datetime

from django.db.models import Min

from berth.applications.models import App, Release
from berth.fleet.models import Container
from berth.tenancy.models import User
from berth.tenancy.roles import Action

from .models import Deployment


def _newest_unfinished(app: App) -> Deployment | None:
    return (
        Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED)
        .order_by("-id")
        .select_related("release")
        .first()
    )


def target_release(app: App) -> Release | None:
    """The release Berth is moving the app to: that of its newest unfinished deployment, or else the
    release that runs. Every change composes with it: a scale or config change made while a release
    deploys applies to that release, and one made after a release failed to the release that runs."""
    pending = _newest_unfinished(app)
    return pending.release if pending is not None else app.current_release


def base_release(app: App) -> Release | None:
    """What a config or formation change builds on: the target release; before any release ran or is on
    its way (the first failed), the newest one, so that a fix of its config or size tries it again."""
    return target_release(app) or app.releases.order_by("-version").first()


def live_since(release: Release) -> datetime | None:
    """When this release went live: the end of its first deployment that succeeded (releases are
    immutable, and a rollback makes a new one, so a release goes live once). None if it never did."""
    return Deployment.objects.filter(release=release, state=Deployment.State.SUCCEEDED).aggregate(t=Min("finished_at"))[
        "t"
    ]


def stable_release(app: App) -> Release | None:
    """The newest release other than the current one that ran and was not rolled back for crash-looping:
    what an automatic rollback returns to."""
    ran = Deployment.objects.filter(app=app, state=Deployment.State.SUCCEEDED, release__crash_looped_at__isnull=True)
    if app.current_release_id is not None:
        ran = ran.exclude(release_id=app.current_release_id)
    last = ran.order_by("-finished_at", "-id").select_related("release").first()
    return last.release if last is not None else None


def running_versions(app: App) -> dict[str, dict[str, int]]:
    """Per process type, how many live containers of each release run: {"web": {"v1": 2, "v2": 1}}.
    During a rollout a process type runs two releases."""
    rows = Container.objects.filter(app=app, state__in=Container.LIVE).values_list("process_type", "release__version")
    counts: dict[str, Counter] = {}
    for process_type, version in rows:
        counts.setdefault(process_type, Counter())[f"v{version}"] += 1
    return {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}


def app_state(app: App) -> dict:
    """What an app runs and where it is going: the release that runs, the target release, and per
    process type the wanted quantity and size beside the live containers of each release."""
    pending = _newest_unfinished(app)
    target = pending.release if pending is not None else app.current_release
    running = running_versions(app)
    formation = app.formation.select_related("size").order_by("process_type")
    process_types = target.process_types if target else {}
    return {
        "release": app.current_release.version if app.current_release else None,
        "target_release": target.version if target else None,
        "deploying": pending is not None,
        "processes": {
            f.process_type: {"quantity": f.quantity, "size": f.size.name, "running": running.get(f.process_type, {})}
            for f in formation
            if f.process_type in process_types or f.process_type in running
        },
    }


# Deployments per page of an app's activity (the dashboard's overview).
ACTIVITY_PAGE = 10


def deployments_page(
    *, actor: User, app: App, before: int | None = None, limit: int = ACTIVITY_PAGE
) -> tuple[list[Deployment], int | None]:
    """The app's deployments newest first, `limit` of them (only those older than deployment `before`
    when given), each with its release, its author and its steps: three queries whatever the number of
    deployments and steps. Returns them and the `before` of the next, older page (None on the last).

    Paged by id rather than by offset, so a deployment queued while someone reads page 2 does not shift
    what page 3 shows; ids grow with creation, so this is the list's creation order. What an activity
    feed does not show is left unread (reading it costs a query per row): the release's config (decrypting
    it for every row cost more than the rest), its process types and the formation snapshots."""
    rows = (
        Deployment.objects.for_actor(actor, Action.APP_VIEW)
        .filter(app=app)
        .select_related("release", "created_by")
        .defer("release__config", "release__process_types", "formation", "previous_formation")
        .prefetch_related("steps")
        .order_by("-id")
    )
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows[: limit + 1])
    older = page[limit - 1].pk if len(page) > limit else None
    return page[:limit], older
