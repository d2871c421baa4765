"""Shared reads about deployments and an app's desired state (docs/deploys.md)."""

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import redis
from django.core.paginator import Page, Paginator
from django.db import connection, models

from berth.applications.models import App, Release
from berth.applications.specs import RUN_PROCESS_TYPE
from berth.fleet.models import Container
from berth.logs import store
from berth.logs.lines import LogLine
from berth.tenancy.models import User
from berth.tenancy.roles import Action

from .canary import canary_quantity, routed_process_types
from .models import Canary, Deployment, Run


def _newest_unfinished(app: App) -> Deployment | None:
    return (
        Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED)
        .exclude(kind__in=Deployment.BESIDE)
        .order_by("-id")
        .select_related("release")
        .first()
    )


def target_release(app: App) -> Release | None:
    """The release Berth is moving the app to: that of its newest unfinished deployment, or else the
    release that runs. Every change composes with it: a scale or config change made while a release
    deploys applies to that release, and one made after a release failed to the release that runs.
    A canary's own deployments (start, weight, abort) are left out: its release runs beside the app's."""
    pending = _newest_unfinished(app)
    return pending.release if pending is not None else app.current_release


def active_canary(app: App | int) -> Canary | None:
    """The app's canary while it is active (its replicas wanted beside the release's), with its release."""
    app_id = app if isinstance(app, int) else app.pk
    return Canary.objects.filter(app_id=app_id, state=Canary.State.ACTIVE).select_related("release").first()


def base_release(app: App) -> Release | None:
    """What a change of config or formation builds on: the target release; before any release ran or is
    on its way (the first failed), the newest one, so that a fix of its config or size tries it again."""
    return target_release(app) or app.releases.order_by("-version").first()


# When a release went live: the end of its first deployment that succeeded (releases are immutable, and a
# rollback makes a new one, so a release goes live once); NULL if it never did. The one definition, for
# `live_since` and `releases_shown`; `{release}` is the release's id.
_LIVE_SINCE = """
    (SELECT MIN(d.finished_at) FROM deployments_deployment d WHERE d.release_id = {release} AND d.state = 'succeeded')
"""


def live_since(release: Release) -> datetime | None:
    """When this release went live (_LIVE_SINCE). None if it never did."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT {}".format(_LIVE_SINCE.format(release="%s")), [release.pk])
        return cursor.fetchone()[0]


class ReleaseShown(NamedTuple):
    """A release as the app overview shows it."""

    version: int
    image: str
    image_digest: str
    process_types: dict
    description: str
    created_at: datetime
    author: str | None  # the email of who made it; None for Berth's own (a crash-loop rollback)
    live_since: datetime | None  # when it went live (_LIVE_SINCE)


# Only what the overview shows of a release and the process types its formation form offers; not the
# config (encrypted, and not shown).
_RELEASES_SHOWN = """
    SELECT r.version, r.image, r.image_digest, r.process_types::json, r.description, r.created_at, author.email,
           {live_since}
      FROM applications_release r
      LEFT JOIN tenancy_user author ON author.id = r.author_id
     WHERE r.app_id = %s AND r.version = ANY(%s)
"""


def releases_shown(app: App, versions: Collection[int]) -> dict[int, ReleaseShown]:
    """These releases of the app by version, each with its author's email and when it went live: one
    query, in SQL (through the ORM, building it cost more than running it, on every poll of the overview)."""
    if not versions:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_RELEASES_SHOWN.format(live_since=_LIVE_SINCE.format(release="r.id")), [app.pk, list(versions)])
        return {row[0]: ReleaseShown(*row) for row in cursor.fetchall()}


def stable_release(app: App) -> Release | None:
    """The newest release other than the current one that ran and was not rolled back for crash-looping:
    what an automatic rollback returns to."""
    ran = Deployment.objects.filter(app=app, state=Deployment.State.SUCCEEDED, release__crash_looped_at__isnull=True)
    if app.current_release_id is not None:
        ran = ran.exclude(release_id=app.current_release_id)
    last = ran.order_by("-finished_at", "-id").select_related("release").first()
    return last.release if last is not None else None


# What app_state reads, in one statement: the newest unfinished deployment's release (its version and
# process types) other than a canary's own, whether any deployment is unfinished, the live containers
# counted per process type, release and canary flag, the formation with its sizes, and the active canary
# (its version, weight and process types). Through the ORM these were several queries whose building cost
# more than running them, on the overview and every poll of it.
_APP_STATE = """
    SELECT
        (SELECT json_build_array(r.version, ARRAY(SELECT jsonb_object_keys(r.process_types)))
           FROM deployments_deployment d
           JOIN applications_release r ON r.id = d.release_id
          WHERE d.app_id = %(app)s AND d.state = ANY(%(unfinished)s) AND d.kind <> ALL(%(beside)s)
          ORDER BY d.id DESC
          LIMIT 1),
        EXISTS (SELECT 1 FROM deployments_deployment d WHERE d.app_id = %(app)s AND d.state = ANY(%(unfinished)s)),
        (SELECT json_agg(json_build_array(live.process_type, live.version, live.canary, live.count))
           FROM (SELECT c.process_type, r.version, c.canary, COUNT(*) AS count
                   FROM fleet_container c
                   JOIN applications_release r ON r.id = c.release_id
                  WHERE c.app_id = %(app)s AND c.state = ANY(%(live)s) AND c.process_type <> %(run)s
                  GROUP BY c.process_type, r.version, c.canary) live),
        (SELECT json_agg(json_build_array(f.process_type, f.quantity, s.name) ORDER BY f.process_type)
           FROM applications_formation f
           JOIN fleet_size s ON s.id = f.size_id
          WHERE f.app_id = %(app)s),
        (SELECT json_build_array(r.version, k.weight, r.process_types)
           FROM deployments_canary k
           JOIN applications_release r ON r.id = k.release_id
          WHERE k.app_id = %(app)s AND k.state = %(active)s)
"""


def app_state(app: App) -> dict:
    """What an app runs and where it is going: the release that runs, the target release (that of its
    newest unfinished deployment, a canary's aside, or else the release that runs), and per process type
    (of the target release, or running) the wanted quantity and size beside the live containers of each
    release: {"web": {"quantity": 2, "size": "small", "running": {"v1": 1, "v2": 1}}}; and the active
    canary, if any, with its own replicas ({"release": 3, "weight": 10, "processes": {"web": {"quantity":
    1, "size": "small", "running": {"v3": 1}}}}), whose replicas `processes` leaves out. One query; the
    release that runs is the app's `current_release`, loaded with it."""
    params: dict[str, Any] = {
        "app": app.pk,
        "unfinished": [str(state) for state in Deployment.UNFINISHED],
        "beside": [str(kind) for kind in Deployment.BESIDE],
        "live": [str(state) for state in Container.LIVE],
        "active": str(Canary.State.ACTIVE),
        "run": RUN_PROCESS_TYPE,  # one-off runs are not processes of a release (docs/runs.md)
    }
    with connection.cursor() as cursor:
        cursor.execute(_APP_STATE, params)
        pending, deploying, live, formation, canary = cursor.fetchone()
    current = app.current_release
    if pending is not None:
        target, process_types = pending[0], set(pending[1])
    else:
        target, process_types = (current.version, set(current.process_types)) if current else (None, set())
    counts: dict[bool, dict[str, dict[str, int]]] = {False: {}, True: {}}
    for process_type, version, is_canary, count in live or []:
        counts[is_canary].setdefault(process_type, {})[f"v{version}"] = count
    running, canaries = ({name: dict(sorted(c.items())) for name, c in counts[flag].items()} for flag in (False, True))
    return {
        "release": current.version if current else None,
        "target_release": target,
        "deploying": deploying,
        "processes": {
            name: {"quantity": quantity, "size": size, "running": running.get(name, {})}
            for name, quantity, size in formation or []
            if name in process_types or name in running
        },
        "canary": _canary_state(canary, current, formation or [], canaries),
    }


def _canary_state(canary: list | None, current: Release | None, formation: list, live: dict) -> dict | None:
    """The active canary as app_state shows it (None without one): its release and weight, and per
    process type it runs the replicas it asks for and those that live, by release."""
    if canary is None or current is None:
        return None
    version, weight, process_types = canary
    routed = set(routed_process_types(process_types, current.process_types))
    return {
        "release": version,
        "weight": weight,
        "processes": {
            name: {"quantity": canary_quantity(quantity, weight), "size": size, "running": live.get(name, {})}
            for name, quantity, size in formation
            if name in routed
        },
    }


class AppStatus(models.TextChoices):
    """What an organization's list of apps says about each one (docs/dashboard.md#organizations-and-apps).

    The values double as CSS classes of the status badge."""

    NEW = "new", "New"
    DEPLOYING = "deploying", "Deploying"
    FAILED = "failed", "Failed"
    SCALED_TO_ZERO = "scaled-to-zero", "Scaled to zero"
    CRASHED = "crashed", "Crashed"
    RUNNING = "running", "Running"


# How long an app whose release Berth rolled back for crash-looping stays "crashed" while it runs the
# rollback: long enough for its people to notice, and over as soon as one of them deploys anything.
CRASH_ROLLBACK_SHOWN = timedelta(hours=1)
# A failed deployment's reason is shown on one line of a list; the deployment's own page has all of it.
FAILURE_SHOWN = 300


@dataclass(frozen=True)
class AppSummary:
    """An app's status and the facts it was decided from."""

    status: AppStatus
    # Live containers of the app (created or running), and how many its formation asks for the process
    # types of the release that runs.
    live: int
    wanted: int
    # The release an unfinished deployment (other than self-healing) is moving the app to.
    deploying_version: int | None = None
    # The release of the newest finished deployment, when that deployment failed, and why.
    failed_version: int | None = None
    failure: str = ""
    # The release that runs is Berth's own rollback from a crash loop, made in the last CRASH_ROLLBACK_SHOWN.
    crash_rollback: bool = False


# What app_statuses reads of an app's current release: a list can load these alone (`only`), with
# select_related("current_release"), and not the encrypted config it would otherwise decrypt.
STATUS_FIELDS = (
    "current_release__version",
    "current_release__process_types",
    "current_release__author",
    "current_release__rollback_of",
    "current_release__created_at",
)


# app_statuses' two reads, in SQL: through the ORM, building and compiling them cost three times what
# PostgreSQL spends running them, on a page that has a budget of 15 ms of CPU. The first is, per app, the
# newest unfinished deployment (a heal aside) and the newest finished one, with the release's version
# and the start of the failure's reason. The second is each process type's formation row with its live
# containers: every process type a release ever had has one (services._add_formation), so no live
# container is left out. A canary's replicas are not the formation's and are not counted.
_NEWEST_DEPLOYMENTS = """
    SELECT DISTINCT ON (d.app_id, d.state = ANY(%(unfinished)s))
           d.app_id, d.state = ANY(%(unfinished)s), d.state, r.version, LEFT(d.error, %(shown)s)
      FROM deployments_deployment d
      JOIN applications_release r ON r.id = d.release_id
     WHERE d.app_id = ANY(%(apps)s) AND NOT (d.state = ANY(%(unfinished)s) AND d.kind = %(heal)s)
     ORDER BY d.app_id, d.state = ANY(%(unfinished)s), d.id DESC
"""
_FORMATION_LIVE = """
    SELECT f.app_id, f.process_type, f.quantity,
           (SELECT COUNT(*) FROM fleet_container c
             WHERE c.app_id = f.app_id AND c.process_type = f.process_type AND c.state = ANY(%(live)s)
               AND NOT c.canary)
      FROM applications_formation f
     WHERE f.app_id = ANY(%(apps)s)
"""


def app_statuses(apps: Sequence[App], *, now: datetime) -> dict[int, AppSummary]:
    """The status of each app, by app id, in two queries however many apps there are.

    `apps` come with `current_release` loaded (select_related, at least its STATUS_FIELDS), as a list
    of apps shows its version anyway. In order, the first that holds:

    - deploying: a deployment other than self-healing is queued or running (a heal replaces crashed
      containers, so it is not a deploy the people of the app asked for);
    - failed: the newest finished deployment failed (the release before it still runs, if there was one);
    - new: no release has gone live yet;
    - scaled to zero: the formation asks for no container of any process type of the release that runs;
    - crashed: a process type has fewer live containers than its formation asks for (a container exited
      and waits for its back-off, or was lost with its host), or the release that runs is Berth's own
      rollback from a crash loop, made within CRASH_ROLLBACK_SHOWN;
    - running: otherwise.
    """
    ids = [app.pk for app in apps]
    # Per app, the newest unfinished deployment (heals aside) and the newest finished one.
    pending: dict[int, int] = {}
    finished: dict[int, tuple[str, int, str]] = {}
    # Per process type, what the formation asks for and how many containers live.
    wanted: dict[int, dict[str, int]] = {}
    live: dict[int, Counter] = {}
    with connection.cursor() as cursor:
        unfinished = [str(state) for state in Deployment.UNFINISHED]
        cursor.execute(
            _NEWEST_DEPLOYMENTS,
            {"apps": ids, "unfinished": unfinished, "heal": str(Deployment.Kind.HEAL), "shown": FAILURE_SHOWN},
        )
        for app_id, unfinished, state, version, reason in cursor.fetchall():
            if unfinished:
                pending[app_id] = version
            else:
                finished[app_id] = (state, version, reason)
        cursor.execute(_FORMATION_LIVE, {"apps": ids, "live": [str(state) for state in Container.LIVE]})
        for app_id, process_type, quantity, count in cursor.fetchall():
            wanted.setdefault(app_id, {})[process_type] = quantity
            live.setdefault(app_id, Counter())[process_type] = count
    return {
        app.pk: _summary(
            app,
            pending=pending.get(app.pk),
            finished=finished.get(app.pk),
            wanted=wanted.get(app.pk, {}),
            live=live.get(app.pk, Counter()),
            now=now,
        )
        for app in apps
    }


def _summary(
    app: App,
    *,
    pending: int | None,
    finished: tuple[str, int, str] | None,
    wanted: dict[str, int],
    live: Counter,
    now: datetime,
) -> AppSummary:
    release = app.current_release
    # A process type the release no longer has keeps its formation row; it asks for nothing.
    asked = {name: quantity for name, quantity in wanted.items() if release and name in release.process_types}
    running = AppSummary(AppStatus.RUNNING, live=sum(live.values()), wanted=sum(asked.values()))
    if pending is not None:
        return replace(running, status=AppStatus.DEPLOYING, deploying_version=pending)
    if finished is not None and finished[0] == Deployment.State.FAILED:
        return replace(running, status=AppStatus.FAILED, failed_version=finished[1], failure=finished[2])
    if release is None:
        return replace(running, status=AppStatus.NEW)
    if running.wanted == 0:
        return replace(running, status=AppStatus.SCALED_TO_ZERO)
    # Only Berth's crash-loop rollback makes a rollback release without an author (services._rollback).
    crash_rollback = (
        release.author_id is None
        and release.rollback_of is not None
        and release.created_at >= now - CRASH_ROLLBACK_SHOWN
    )
    if crash_rollback or any(live[name] < quantity for name, quantity in asked.items()):
        return replace(running, status=AppStatus.CRASHED, crash_rollback=crash_rollback)
    return running


@dataclass(frozen=True)
class ReleaseChanges:
    """What a release changed from the one before it. Names only: a config value never gets here."""

    first: bool = False
    image_before: str = ""
    digest_changed: bool = False
    processes_added: tuple[str, ...] = ()
    processes_changed: tuple[str, ...] = ()
    processes_removed: tuple[str, ...] = ()
    config_added: tuple[str, ...] = ()
    config_changed: tuple[str, ...] = ()
    config_removed: tuple[str, ...] = ()

    @property
    def image_changed(self) -> bool:
        return bool(self.image_before)

    @property
    def nothing(self) -> bool:
        """True when the release repeats the one before it (a config value set to what it was)."""
        return self == ReleaseChanges()


def _name_diff(before: dict, after: dict) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The names added, changed (present in both with another value) and removed, each sorted."""
    added = tuple(sorted(after.keys() - before.keys()))
    changed = tuple(sorted(name for name in after.keys() & before.keys() if after[name] != before[name]))
    removed = tuple(sorted(before.keys() - after.keys()))
    return added, changed, removed


def release_diff(before: Release | None, after: Release) -> ReleaseChanges:
    """What `after` changes from `before` (None: `after` is the app's first release).

    Process types are compared as loaded (`Release.processes`), so a release stored before a field
    existed does not read as changed; config is compared value by value and reported by key."""
    if before is None:
        return ReleaseChanges(first=True)
    digests = before.image_digest and after.image_digest and before.image == after.image
    processes = _name_diff(before.processes, after.processes)
    config = _name_diff(before.config, after.config)
    return ReleaseChanges(
        image_before=before.image if before.image != after.image else "",
        digest_changed=bool(digests and before.image_digest != after.image_digest),
        processes_added=processes[0],
        processes_changed=processes[1],
        processes_removed=processes[2],
        config_added=config[0],
        config_changed=config[1],
        config_removed=config[2],
    )


def release_changes(releases: Sequence[Release]) -> list[ReleaseChanges]:
    """For releases of one app given newest first, what each changed from the next one in the sequence
    (the release before it); the last is compared with nothing. A page of N releases passes N + 1 rows
    (when there are more) and shows the first N, so its oldest row has its predecessor at no extra query."""
    return [release_diff(releases[i + 1] if i + 1 < len(releases) else None, r) for i, r in enumerate(releases)]


@dataclass(frozen=True)
class ReleaseRow:
    """One line of an app's release history: the release, what it changed, and where Berth is with it."""

    release: Release
    changes: ReleaseChanges
    running: bool
    deploying: bool


@dataclass(frozen=True)
class ReleasePage:
    """One page of an app's release history: its rows, and the page (number, neighbours) for the links."""

    rows: list[ReleaseRow]
    page: Page[Release]


def release_page(app: App, number: int | str | None, *, per_page: int = 25) -> ReleasePage:
    """One page of the app's releases, newest first, each with what it changed and whether it runs or is
    being deployed: three queries whatever the page or the history (the count, the rows with their
    authors and the one before the oldest, the target release)."""
    newest_first = Release.objects.filter(app=app).order_by("-version")
    page = Paginator(newest_first, per_page).get_page(number)
    start = (page.number - 1) * per_page
    rows = list(newest_first.select_related("author")[start : start + per_page + 1])
    changes = release_changes(rows)
    target = target_release(app)
    deploying = target.pk if target is not None and target.pk != app.current_release_id else None
    shown = [
        ReleaseRow(release=r, changes=c, running=r.pk == app.current_release_id, deploying=r.pk == deploying)
        for r, c in zip(rows[:per_page], changes, strict=False)
    ]
    return ReleasePage(rows=shown, page=page)


def config_keys(app: App) -> list[str]:
    """The app's config keys, sorted; the values are not read (nor decrypted)."""
    return list(app.config_vars.order_by("key").values_list("key", flat=True))


@dataclass(frozen=True)
class ConfigDiff:
    """What a config change does, by key: the keys it adds, those it changes and those it removes."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


def config_diff(keys: Iterable[str], values: dict[str, str | None]) -> ConfigDiff:
    """How `values` (KEY: value to set, KEY: None to unset, as `config_set` takes them) changes an app
    whose config has `keys`. A key given a value counts as changed whether or not the value differs:
    telling would let anyone who may edit test a guess at a secret without revealing it."""
    present = set(keys)
    return ConfigDiff(
        added=tuple(sorted(k for k, v in values.items() if v is not None and k not in present)),
        changed=tuple(sorted(k for k, v in values.items() if v is not None and k in present)),
        removed=tuple(sorted(k for k, v in values.items() if v is None and k in present)),
    )


# Deployments per page of an app's activity (the dashboard's overview).
ACTIVITY_PAGE = 10

# A deployment's steps for the activity feed: when, as ISO 8601 text in UTC (what Python's isoformat()
# writes: microseconds only when there are some), and what. Read as text because psycopg, under Django's
# own timestamptz loader, parses a timestamp in Python (~3 µs each), and a rollout of 100 containers writes
# 500 steps: a feed of 10 rollouts spent more on parsing its times than on the rest of the page.
_STEP_LINES = """
    SELECT s.deployment_id,
           to_char(s.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN date_part('microseconds', s.at)::integer %% 1000000 = 0 THEN ''
                   ELSE to_char(s.at AT TIME ZONE 'UTC', '.US') END
           || '+00:00',
           s.message
      FROM deployments_deploymentstep s
     WHERE s.deployment_id = ANY(%s)
     ORDER BY s.at, s.id
"""


# One step as an activity feed reads it: (when, in ISO 8601 and UTC, what). A plain tuple: building a
# NamedTuple per step cost twice as much as reading the steps.
StepLine = tuple[str, str]

_KINDS = dict(Deployment.Kind.choices)
_STATES = dict(Deployment.State.choices)


class ActivityEntry(NamedTuple):
    """A deployment as an activity feed shows it."""

    id: int
    kind: str
    state: str
    version: int  # the release's
    author: str | None  # the email of who asked for it; None for Berth's own (a heal, a crash-loop rollback)
    created_at: datetime
    error: str
    # Its steps in order; None when the caller holds them already (deployments_page's `held`).
    step_lines: list[StepLine] | None

    def get_kind_display(self) -> str:
        return _KINDS.get(self.kind, self.kind)

    def get_state_display(self) -> str:
        return _STATES.get(self.state, self.state)


# The page of deployments, in SQL: through the ORM, building it (three tables, the scoping) cost more than
# PostgreSQL spends running it, on the overview and every poll of it. `{scoped}` is the scoping's own SQL.
_ACTIVITY = """
    SELECT d.id, d.kind, d.state, r.version, author.email, d.created_at, d.error
      FROM deployments_deployment d
      JOIN applications_release r ON r.id = d.release_id
      LEFT JOIN tenancy_user author ON author.id = d.created_by_id
     WHERE d.app_id = %s AND d.id < %s AND d.id IN ({scoped})
     ORDER BY d.id DESC
     LIMIT %s
"""


def deployments_page(
    *, actor: User, app: App, before: int | None = None, limit: int = ACTIVITY_PAGE, held: Collection[int] = ()
) -> tuple[list[ActivityEntry], int | None]:
    """The app's deployments newest first, `limit` of them (only those older than deployment `before`
    when given), each with its release's version, its author's email and its steps: two queries whatever
    the number of deployments and steps. Returns them and the `before` of the next, older page (None on
    the last).

    `held`: deployments whose steps the caller holds already. Those that succeeded come without them
    (`step_lines` None): a deployment writes no step once it succeeded, so what the caller holds is all.

    Paged by id rather than by offset, so a deployment queued while someone reads page 2 does not shift
    what page 3 shows; ids grow with creation, so this is the list's creation order. What an activity
    feed does not show is left unread: the release's config (encrypted) and everything else of it but its
    version, the author but their email, the formation snapshots."""
    scoped = Deployment.objects.for_actor(actor, Action.APP_VIEW).filter(app=app).order_by().values("id")
    scoped_sql, scoped_params = scoped.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVITY.format(scoped=scoped_sql), [app.pk, before or 2**63 - 1, *scoped_params, limit + 1])
        rows = cursor.fetchall()
        older = rows[limit - 1][0] if len(rows) > limit else None
        rows = rows[:limit]
        kept = {row[0] for row in rows if row[0] in held and row[2] == Deployment.State.SUCCEEDED}
        lines: dict[int, list[StepLine]] = {row[0]: [] for row in rows if row[0] not in kept}
        if rows:  # the query runs even when every step is held, so the count of queries never changes
            cursor.execute(_STEP_LINES, [list(lines)])
            for deployment_id, at, message in cursor.fetchall():
                lines[deployment_id].append((at, message))
    return [ActivityEntry._make((*row, lines.get(row[0]))) for row in rows], older


def run_output(run: Run, *, lines: int = 100) -> "list[LogLine] | None":
    """A run's last `lines` lines, oldest first: what its container printed and Berth's lines about it
    (process `run.<id>` in the app's logs). None when the log store does not answer."""
    try:
        return store.recent(run.app_id, lines=lines, where=store.Filter(process=run.process))
    except redis.RedisError:
        return None
