"""Self-healing: which apps drifted from their desired state, crash back-off per replica slot, and
crash loops (docs/deploys.md).

- `drifts` says which apps run something other than their release and formation, and how long each
  must wait before a heal deployment, in a few queries however many apps there are.
- Crash back-off is per slot (process type, index): a slot's first crash is replaced at once, the
  next ones after 1, 2, 4 … 60 s. It starts again once the slot's container stayed healthy
  BERTH_BACKOFF_RESET_SECONDS (a start that worked), and with a new release; one slot's crashes never
  delay another's.
- `heal_app` rolls back a release that crash-loops in its first BERTH_CRASH_LOOP_SECONDS, and
  otherwise starts a heal deployment, which leaves the slots still backing off for a later pass.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from berth.applications.models import App, Formation, Release
from berth.applications.specs import RUN_PROCESS_TYPE
from berth.core import task_names
from berth.core.queue import enqueue
from berth.deployments.canary import canary_quantity, routed_process_types
from berth.deployments.models import Canary, Deployment
from berth.deployments.selectors import active_canary, live_since, stable_release
from berth.deployments.services import canary_abort, deployment_create, release_rollback_crash_loop
from berth.fleet.models import Container, DockerHost
from berth.fleet.selectors import live_containers

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
# Crashes older than this never count, whatever the slot did since.
CRASH_WINDOW = timedelta(minutes=10)

Slot = tuple[str, int]  # (process type, index)


def crash_backoff_s(streak: int) -> float:
    """Delay before replacing a slot's container after `streak` crashes in a row: none after the
    first, then doubling from 1 s, capped at 60 s."""
    return 0.0 if streak <= 1 else min(BACKOFF_BASE_S * 2 ** (streak - 2), BACKOFF_CAP_S)


@dataclass(frozen=True)
class Crash:
    """A container of a slot that exited on its own."""

    healthy_at: datetime | None
    finished_at: datetime

    @property
    def healthy_s(self) -> float:
        """How long it served before it crashed: 0 if it never became healthy."""
        return max(0.0, (self.finished_at - self.healthy_at).total_seconds()) if self.healthy_at else 0.0


def slot_wait_s(crashes: list[Crash], now: datetime) -> float:
    """Seconds a slot must still wait, from its crashes newest first: the streak counts back from the
    newest crash until one whose container had stayed healthy long enough to reset it. A container that
    crashes before it ever served, or soon after, is what back-off protects the host from."""
    if not crashes:
        return 0.0
    streak = 0
    for crash in crashes:
        streak += 1
        if crash.healthy_s >= settings.BERTH_BACKOFF_RESET_SECONDS:
            break
    return max(0.0, crash_backoff_s(streak) - (now - crashes[0].finished_at).total_seconds())


def _crashes(releases: dict[int, int], now: datetime, *, canary: bool = False) -> dict[int, dict[Slot, list[Crash]]]:
    """Recent crashes of each app's given release, by slot, newest first: {app id: {slot: [Crash]}}; of its
    canary's slots with `canary`."""
    found: dict[int, dict[Slot, list[Crash]]] = defaultdict(lambda: defaultdict(list))
    rows = (
        Container.objects.filter(
            app_id__in=releases,
            release_id__in=set(releases.values()),
            canary=canary,
            state=Container.State.EXITED,
            finished_at__gte=now - CRASH_WINDOW,
        )
        .order_by("-finished_at")
        .values_list("app_id", "release_id", "process_type", "index", "healthy_at", "finished_at")
    )
    for app_id, release_id, process_type, index, healthy_at, finished_at in rows:
        if releases[app_id] == release_id and finished_at is not None:  # not None: filtered on above
            found[app_id][(process_type, index)].append(Crash(healthy_at, finished_at))
    return found


def slots_backing_off(app: App, release: Release, *, canary: bool = False) -> dict[Slot, float]:
    """The slots of `release` (of the app's canary, with `canary`) that must still wait after their
    crashes, and for how long."""
    now = timezone.now()
    slots = _crashes({app.pk: release.pk}, now, canary=canary).get(app.pk, {})
    waits = {slot: slot_wait_s(crashes, now) for slot, crashes in slots.items()}
    return {slot: wait for slot, wait in waits.items() if wait > 0}


def app_drift(app: App) -> float | None:
    """Seconds before a heal of this app may start (0: now), or None if it runs what it should."""
    return drifts([app.pk]).get(app.pk)


def drifts(app_ids: Iterable[int]) -> dict[int, float]:
    """{app id: seconds to wait} for the apps among `app_ids` that drifted: a slot empty, crashed or
    unhealthy, a container of another release or size, on a draining host, or one too many; of the
    release's slots or of its active canary's (which a canary that ended has none of). The wait is 0
    when anything but an empty slot in back-off needs doing, else the shortest slot back-off."""
    releases = dict(
        App.objects.filter(pk__in=app_ids, current_release__isnull=False).values_list("pk", "current_release_id")
    )
    if not releases:
        return {}
    canaries = {
        app_id: (release_id, weight)
        for app_id, release_id, weight in Canary.objects.filter(
            app_id__in=releases, state=Canary.State.ACTIVE
        ).values_list("app_id", "release_id", "weight")
    }
    process_types = dict(
        Release.objects.filter(
            pk__in={*releases.values(), *(release_id for release_id, _ in canaries.values())}
        ).values_list("pk", "process_types")
    )
    wanted: dict[int, dict[Slot, int]] = {app_id: {} for app_id in releases}
    wanted_canary: dict[int, dict[Slot, int]] = {app_id: {} for app_id in releases}
    formation: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for app_id, process_type, quantity, size_id in Formation.objects.filter(app_id__in=releases).values_list(
        "app_id", "process_type", "quantity", "size_id"
    ):
        formation[app_id][process_type] = (quantity, size_id)
        if process_type in process_types[releases[app_id]]:
            wanted[app_id].update({(process_type, i): size_id for i in range(quantity)})
    for app_id, (release_id, weight) in canaries.items():
        for name in routed_process_types(process_types[release_id], process_types[releases[app_id]]):
            quantity, size_id = formation[app_id].get(name, (0, 0))
            wanted_canary[app_id].update({(name, i): size_id for i in range(canary_quantity(quantity, weight))})
    live: dict[int, list] = {app_id: [] for app_id in releases}
    live_canary: dict[int, list] = {app_id: [] for app_id in releases}
    # A one-off run's container is no replica: it neither fills nor overfills a slot (docs/runs.md).
    replicas = live_containers(app_id__in=releases).exclude(process_type=RUN_PROCESS_TYPE)
    for app_id, is_canary, *row in replicas.values_list(
        "app_id", "canary", "process_type", "index", "release_id", "size_id", "health", "host__state"
    ):
        (live_canary if is_canary else live)[app_id].append(row)
    now = timezone.now()
    empty: dict[int, set[Slot]] = {}
    empty_canary: dict[int, set[Slot]] = {}
    result: dict[int, float] = {}
    for app_id, release_id in releases.items():
        missing, other = _drift(wanted[app_id], live[app_id], release_id)
        canary_release = canaries.get(app_id, (None, 0))[0]
        missing_canary, other_canary = _drift(wanted_canary[app_id], live_canary[app_id], canary_release)
        if other or other_canary:
            result[app_id] = 0.0
        elif missing or missing_canary:
            empty[app_id], empty_canary[app_id] = missing, missing_canary
    if empty:
        crashes = _crashes({app_id: releases[app_id] for app_id in empty}, now)
        canary_crashes = _crashes(
            {app_id: canaries[app_id][0] for app_id in empty if app_id in canaries}, now, canary=True
        )
        for app_id in empty:
            by_slot, by_canary_slot = crashes.get(app_id, {}), canary_crashes.get(app_id, {})
            waits = [slot_wait_s(by_slot.get(slot, []), now) for slot in empty[app_id]]
            waits += [slot_wait_s(by_canary_slot.get(slot, []), now) for slot in empty_canary[app_id]]
            result[app_id] = min(waits)
    return result


def _drift(wanted: dict[Slot, int], live: list, release_id: int | None) -> tuple[set[Slot], bool]:
    """(slots with no container at all, whether anything else differs from what is wanted)."""
    occupied = {(process_type, index) for process_type, index, *_ in live}
    serving = {
        (process_type, index)
        for process_type, index, release, size_id, health, host_state in live
        if release == release_id
        and size_id == wanted.get((process_type, index))
        and health != Container.Health.UNHEALTHY
        and host_state != DockerHost.State.DRAINING
    }
    missing = set(wanted) - occupied
    other = bool(set(wanted) - missing - serving) or len(live) != len(serving) or bool(occupied - set(wanted))
    return missing, other


def heal_app(app: App) -> Deployment | None:
    """Roll back a crash-looping release, or start a heal deployment if the app drifted and back-off
    allows; nothing while another deployment of the app is under way."""
    with transaction.atomic():
        app = App.objects.select_for_update(of=("self",)).select_related("current_release").get(pk=app.pk)
        if app.deployments.filter(state__in=Deployment.UNFINISHED).exists():
            return None
        loop = crash_loop(app)
        if loop is not None:
            to, reason = loop
            logger.warning("app %s: %s; rolling back to v%s", app.pk, reason, to.version)
            _, deployment = release_rollback_crash_loop(app=app, to=to, reason=reason)
            return deployment
        canary = active_canary(app)
        canary_loop = canary_crash_loop(canary) if canary is not None else None
        if canary_loop is not None:
            logger.warning("app %s: %s; aborting the canary", app.pk, canary_loop)
            _, deployment = canary_abort(actor=None, app=app, reason=canary_loop)
            return deployment
        wait = app_drift(app)
        # An app with no current release never drifts (drifts), so the second test only narrows the type.
        if wait is None or wait > 0 or app.current_release is None:
            return None
        return deployment_create(actor=None, app=app, release=app.current_release, kind=Deployment.Kind.HEAL)


def crash_loop(app: App) -> tuple[Release, str] | None:
    """(the release to return to, why) when the current release crash-loops: it crashed
    BERTH_CRASH_LOOP_CRASHES times within BERTH_CRASH_LOOP_SECONDS of going live, or, within that time,
    a crash left a process type with no healthy replica that back-off would keep empty. None otherwise,
    or when no earlier release ran stably to return to."""
    release = app.current_release
    if release is None:
        return None
    since = live_since(release)
    if since is None:
        return None
    window = timedelta(seconds=settings.BERTH_CRASH_LOOP_SECONDS)
    crashes = Container.objects.filter(
        app=app, release=release, state=Container.State.EXITED, finished_at__gte=since, finished_at__lte=since + window
    ).count()
    if crashes >= settings.BERTH_CRASH_LOOP_CRASHES:
        reason = f"v{release.version} crashed {crashes} times within {window.seconds} s of going live"
    elif crashes and timezone.now() <= since + window and (empty := _kept_empty(app, release)):
        reason = f"v{release.version} crashed, and crash back-off would leave {empty} with no healthy container"
    else:
        return None
    to = stable_release(app)
    if to is None:
        logger.warning("app %s: %s, but no earlier release ran stably", app.pk, reason)
        return None
    return to, reason


def canary_crash_loop(canary: Canary) -> str | None:
    """Why the canary is aborted, when its replicas crashed BERTH_CRASH_LOOP_CRASHES times within the last
    BERTH_CRASH_LOOP_SECONDS; None otherwise. Unlike a release that went live, a canary never proved
    itself, whatever its age: a canary is how a release proves itself."""
    window = timedelta(seconds=settings.BERTH_CRASH_LOOP_SECONDS)
    since = max(canary.created_at, timezone.now() - window)
    crashes = Container.objects.filter(
        app_id=canary.app_id,
        release_id=canary.release_id,
        canary=True,
        state=Container.State.EXITED,
        finished_at__gte=since,
    ).count()
    if crashes < settings.BERTH_CRASH_LOOP_CRASHES:
        return None
    return f"the canary v{canary.release.version} crashed {crashes} times within {window.seconds} s"


def _kept_empty(app: App, release: Release) -> str | None:
    """A process type with no healthy container whose empty slots are all backing off, if any."""
    wanted = dict(Formation.objects.filter(app=app).values_list("process_type", "quantity"))
    waiting = [(name, index) for name, index in slots_backing_off(app, release) if index < wanted.get(name, 0)]
    if not waiting:
        return None
    healthy = set(
        live_containers(app=app, release=release, health=Container.Health.HEALTHY).values_list(
            "process_type", flat=True
        )
    )
    for process_type in sorted({name for name, _ in waiting} - healthy):
        return process_type
    return None


def heal_later(app_id: int, wait_s: float) -> None:
    """Look at the app again once a slot's back-off is over."""
    enqueue(task_names.RECONCILE_APP, app_id, countdown=wait_s)


def heal_apps(app_ids: Iterable[int]) -> None:
    """Heal each of these apps that drifted: now, or once its shortest slot back-off is over. Each is
    looked at even while it waits, as a crash in a new release's first minutes may call for a rollback."""
    idle = App.objects.filter(pk__in=app_ids).exclude(deployments__state__in=Deployment.UNFINISHED)
    for app_id, wait in sorted(drifts(idle.values_list("pk", flat=True)).items()):
        if heal_app(App.objects.get(pk=app_id)) is None and wait > 0:
            heal_later(app_id, wait)
