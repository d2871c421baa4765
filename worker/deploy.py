"""Running a deployment: claim it, hold the app's lock, converge the hosts on the target, start-first.

Converging is level-based: each pass looks at what runs now, so a deployment resumed after its
worker died carries on from where the hosts are, and finishes with exactly the wanted containers.
"""

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from berth.applications.models import App, Formation, Release
from berth.applications.specs import RUN_PROCESS_TYPE, ProcessType
from berth.deployments.canary import canary_quantity, routed_process_types
from berth.deployments.models import Canary, Deployment
from berth.deployments.selectors import active_canary
from berth.deployments.services import canary_failed, deployment_give_back
from berth.fleet import transitions
from berth.fleet.models import Container, DockerHost, Size
from berth.fleet.selectors import live_containers

from . import locks, routing
from .healing import heal_apps, slots_backing_off
from .placement import PlacementError
from .reconcile import check_host
from .runs import release_phase
from .runtime import (
    Chosen,
    DeployFailed,
    HealthResult,
    Replica,
    choose_hosts,
    heartbeat_written,
    prepare_host,
    start_container,
    step,
    stop_container,
    wait_healthy,
    wait_ready,
    worker_name,
)

T = TypeVar("T")


def app_lock(app_id: int) -> AbstractContextManager[None]:
    """Held for a whole deployment, so one app never has two deployments running at once."""
    return locks.advisory_lock(locks.APP, app_id)


def claim_next(app_id: int) -> Deployment | None:
    """Take the app's oldest unfinished deployment for this worker; None if there is none. Call with
    the app lock held: a deployment that is `running` under a free lock was left by a worker that died."""
    now, me = timezone.now(), worker_name()
    oldest = Deployment.objects.filter(app_id=app_id, state__in=Deployment.UNFINISHED).order_by("id")
    claimed = Deployment.objects.filter(pk=Subquery(oldest.values("pk")[:1])).update(
        state=Deployment.State.RUNNING,
        claimed_by=me,
        heartbeat_at=now,
        started_at=Coalesce("started_at", Value(now)),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    # The row just claimed: nobody else writes this app's deployments while its lock is held.
    deployment = Deployment.objects.select_related("app__organization", "release").get(
        app_id=app_id, state=Deployment.State.RUNNING, claimed_by=me, heartbeat_at=now
    )
    deployment.release.app = deployment.app  # one app, read once
    heartbeat_written(deployment)
    if deployment.attempts > 1:
        step(deployment, f"Resumed by {me} (attempt {deployment.attempts}).")
    return deployment


def run_app_deployments(app_id: int) -> None:
    """Run this app's unfinished deployments, oldest first, under its lock. A crash while they ran
    found the app busy and was not healed: once the last one succeeded, the app is looked at again.
    (Not after a failure, which would otherwise retry at once, again and again: the periodic pass does.)"""
    succeeded = False
    with app_lock(app_id):
        while (deployment := claim_next(app_id)) is not None:
            succeeded = execute(deployment)
    if succeeded:
        heal_apps([app_id])


@dataclass(frozen=True)
class Rollout:
    """What one converge works towards, handed to every slot it touches."""

    app: App
    release: Release
    deployment: Deployment | None
    # New containers must stay healthy for their process type's min_ready_s before they replace an old
    # one or count as done. A heal skips it: its release already proved itself, and a replacement that
    # crashes later is crash back-off's and crash-loop detection's business (worker/healing.py).
    wait_ready: bool = True
    # Slots (process type, index) in crash back-off, which this converge leaves empty.
    deferred: frozenset[tuple[str, int]] = frozenset()
    # A heal: the canary's slots in crash back-off are left empty too.
    heal: bool = False
    # The slots are the app's canary's (Container.canary), apart from its release's.
    canary: bool = False

    def replica(self, process: ProcessType, index: int, size: Size) -> Replica:
        """A slot of this rollout's release to start a container in."""
        return Replica(
            deployment=self.deployment,
            release=self.release,
            process=process,
            index=index,
            size=size,
            canary=self.canary,
        )


def execute(deployment: Deployment) -> bool:
    """Converge the app on the deployment's release and formation, with its canary beside it if it has
    one; whether it succeeded. A canary's own deployments converge on the release that runs."""
    app = deployment.app
    beside = deployment.kind in Deployment.BESIDE
    release = _running(app) if beside else deployment.release
    if release is None:
        fail(deployment, "the app runs no release for a canary to run beside")
        return False
    if deployment.kind == Deployment.Kind.PROMOTE:
        _adopt_canary(deployment)
    elif beside:
        _canary_gone(deployment)
    target = {f.process_type: (f.quantity, f.size) for f in Formation.objects.filter(app=app).select_related("size")}
    healing = deployment.kind == Deployment.Kind.HEAL
    rollout = Rollout(
        app=app,
        release=release,
        deployment=deployment,
        wait_ready=not healing,
        deferred=frozenset(slots_backing_off(app, release)) if healing else frozenset(),
        heal=healing,
    )
    try:
        failed = None if beside else release_phase(deployment, release)
        if failed is not None:
            raise DeployFailed(failed)
        converge(rollout, target)
    except DeployFailed as failure:
        fail(deployment, str(failure))
        return False
    if deployment.kind == Deployment.Kind.CANARY:
        # A new weight may start or stop no replica, and the routers must still hear of it.
        routing.push([app.pk], deployment)
    with transaction.atomic():
        if not beside:
            App.objects.filter(pk=app.pk).update(current_release=release)
        finish(deployment, Deployment.State.SUCCEEDED, _done(app, release))
    return True


def _running(app: App) -> Release | None:
    if app.current_release_id is None:
        return None
    release = Release.objects.filter(pk=app.current_release_id).first()
    if release is not None:
        release.app = app
    return release


def _done(app: App, release: Release) -> str:
    canary = active_canary(app)
    if canary is None:
        return f"Done: {app.name} runs v{release.version}."
    beside = f"the canary v{canary.release.version} gets {canary.weight}% of its requests"
    return f"Done: {app.name} runs v{release.version}, and {beside}."


def _canary_gone(deployment: Deployment) -> None:
    """A canary's deployment whose canary ended before it ran says so; it converges the app all the same."""
    if deployment.kind != Deployment.Kind.CANARY:
        return
    ended = Canary.objects.filter(app_id=deployment.app_id, release_id=deployment.release_id).order_by("-id").first()
    if ended is not None and ended.state != Canary.State.ACTIVE:
        why = f": {ended.reason}" if ended.reason else ""
        step(deployment, f"The canary v{deployment.release.version} was {ended.get_state_display().lower()}{why}.")


def _adopt_canary(deployment: Deployment) -> None:
    """A promotion: the canary's replicas become the release's replicas of the same slots, which the
    converge then keeps while it replaces the other slots' old containers, start-first. Their share of
    the requests becomes an even one at once."""
    release = deployment.release
    adopted = transitions.containers_promoted(app_id=deployment.app_id, release_id=release.pk)
    if adopted:
        step(deployment, f"The canary's {adopted} replicas of v{release.version} become replicas of the release.")
        routing.push([deployment.app_id], deployment)


def _choose(release: Release, process: ProcessType, size: Size, indices: list[int]) -> list[Chosen]:
    """Hosts for new containers of these indices, or DeployFailed saying why there are none."""
    try:
        return choose_hosts(release=release, process=process, size=size, count=len(indices))
    except PlacementError:
        # Placement counts only hosts known to be up. One nobody has checked yet (bootstrap registers
        # the local engine before any worker runs) is checked now, and placement tried once more: the
        # heartbeat task may also have checked it meanwhile.
        _check_unchecked_hosts()
    try:
        return choose_hosts(release=release, process=process, size=size, count=len(indices))
    except PlacementError as error:
        raise _unplaceable(process, indices, error) from None


def _unplaceable(process: ProcessType, indices: list[int], error: PlacementError) -> DeployFailed:
    what = f"{process.name}.{indices[0]}" if len(indices) == 1 else f"{len(indices)} new {process.name} containers"
    return DeployFailed(f"Cannot place {what}: {error}")


def _check_unchecked_hosts() -> None:
    for host in DockerHost.objects.filter(status=DockerHost.Status.PENDING).exclude(state=DockerHost.State.RETIRED):
        check_host(host)


def finish(deployment: Deployment, state: str, message: str, error: str = "") -> None:
    step(deployment, message)
    Deployment.objects.filter(pk=deployment.pk).update(state=state, finished_at=timezone.now(), error=error)


def fail(deployment: Deployment, reason: str) -> None:
    """Give back what the deployment changed (deployments.services.deployment_give_back) and put the
    hosts back on the release that runs, with the formation as it now stands."""
    step(deployment, f"Failed: {reason}")
    app = deployment.app
    running = deployment_give_back(deployment, reason)
    try:
        if running is not None:
            step(deployment, f"Returning {app.name} to v{running.version}.")
            formation = {
                f.process_type: (f.quantity, f.size) for f in Formation.objects.filter(app=app).select_related("size")
            }
            converge(Rollout(app=app, release=running, deployment=deployment, wait_ready=False), formation)
        else:
            _stop_together(
                list(live_containers(app=app).select_related("host")), deployment, "the app's first release failed"
            )
    except DeployFailed as again:
        step(deployment, f"Could not fully restore the previous state: {again}")
    finish(deployment, Deployment.State.FAILED, "Deployment failed; the previous release keeps running.", error=reason)


def _is_current(container: Container, release: Release, size: Size, deployment: Deployment | None) -> bool:
    if container.release_id != release.pk or container.size_id != size.pk:
        return False
    if container.health != Container.Health.HEALTHY or container.host.state == DockerHost.State.DRAINING:
        return False
    return not (deployment is not None and _restart_target(container, deployment))


def _restart_target(container: Container, deployment: Deployment) -> bool:
    """A container a restart must replace: one that existed when the restart was asked for."""
    if deployment.kind != Deployment.Kind.RESTART or container.created_at >= deployment.created_at:
        return False
    if deployment.restart_container_id:
        return container.pk == deployment.restart_container_id
    return not deployment.restart_process_type or container.process_type == deployment.restart_process_type


def converge(rollout: Rollout, formation: dict) -> None:
    """Make the hosts run exactly `formation` of the rollout's release: missing replicas start together,
    old ones are replaced one at a time, start-first (so a rollout needs room for one more container)."""
    app, release, deployment = rollout.app, rollout.release, rollout.deployment
    processes = release.processes
    for name in sorted(processes):
        quantity, size = formation.get(name, (0, None))
        _start_missing(rollout, processes[name], quantity, size)
        for index in range(quantity):
            _converge_slot(rollout, processes[name], index, size)
        extras = live_containers(app=app, canary=False, process_type=name, index__gte=quantity)
        _stop_together(list(extras.select_related("host")), deployment, f"{name} is scaled to {quantity}")
    # Runs are not the release's processes, and end on their own (docs/runs.md).
    stale = (
        live_containers(app=app, canary=False)
        .exclude(process_type__in=[*processes, RUN_PROCESS_TYPE])
        .select_related("host")
    )
    for container in stale:
        stop_container(container, deployment, f"v{release.version} has no {container.process_type} process")
    _converge_canary(rollout, formation)


def _converge_canary(rollout: Rollout, formation: dict) -> None:
    """Keep the app's active canary beside its release: for each process type both take HTTP with,
    canary_quantity replicas of the canary's release in the canary's own slots, started and replaced as
    the release's are; every other canary replica (the canary ended, shrank or was replaced) is stopped.

    A canary replica that cannot be placed or never becomes healthy fails the canary's own deployment.
    In any other deployment (a scale, a heal, an abort of an earlier canary) it fails the canary instead,
    which ends, and the deployment goes on with what it was asked for (docs/deploys.md#canary-releases)."""
    app, deployment = rollout.app, rollout.deployment
    canary = _canary_beside(app, rollout.release)
    wanted: dict[str, int] = {}
    if canary is not None:
        try:
            wanted = _converge_canary_replicas(rollout, canary, formation)
        except DeployFailed as failure:
            own = (
                deployment is not None
                and deployment.kind == Deployment.Kind.CANARY
                and deployment.release_id == canary.release_id
            )
            if own:
                raise  # the canary's own deployment fails, and ends it (deployment_give_back)
            reason = f"the canary v{canary.release.version} failed: {failure}"
            step(deployment, f"{reason[0].upper()}{reason[1:]}. It ends; its replicas go.")
            canary_failed(app=app, canary=canary, reason=str(failure))
            canary, wanted = None, {}
    leaving = [
        container
        for container in live_containers(app=app, canary=True).select_related("host")
        if container.index >= wanted.get(container.process_type, 0)
    ]
    why = "the canary ended" if canary is None else f"the canary v{canary.release.version} runs fewer replicas"
    _stop_together(leaving, deployment, why)


def _converge_canary_replicas(rollout: Rollout, canary: Canary, formation: dict) -> dict[str, int]:
    """Start and replace the canary's replicas; how many each process type it runs wants."""
    wanted: dict[str, int] = {}
    release = canary.release
    release.app = rollout.app
    processes = release.processes
    deferred = frozenset(slots_backing_off(rollout.app, release, canary=True)) if rollout.heal else frozenset()
    on = replace(rollout, release=release, canary=True, deferred=deferred)
    for name in routed_process_types(release.process_types, rollout.release.process_types):
        quantity, size = formation.get(name, (0, None))
        wanted[name] = canary_quantity(quantity, canary.weight)
        _start_missing(on, processes[name], wanted[name], size)
        for index in range(wanted[name]):
            _converge_slot(on, processes[name], index, size)
    return wanted


def _canary_beside(app: App, release: Release) -> Canary | None:
    """The canary whose replicas a converge on `release` keeps: the active one, or one promoted whose
    promotion is still queued behind this deployment (a scale asked for before it), so that the promotion
    finds its replicas to adopt rather than starting the release's from none."""
    canary = active_canary(app)
    if canary is not None:
        return canary
    promoting = (
        Deployment.objects.filter(app=app, kind=Deployment.Kind.PROMOTE, state__in=Deployment.UNFINISHED)
        .exclude(release=release)
        .values("release_id")
    )
    return (
        Canary.objects.filter(app=app, state=Canary.State.PROMOTED, release_id__in=promoting)
        .select_related("release")
        .order_by("-id")
        .first()
    )


def _stop_together(containers: list[Container], deployment: Deployment | None, why: str) -> None:
    """Stop containers nothing needs any more (a scale-in, a failed first release) at the same time."""
    _in_parallel(lambda container: stop_container(container, deployment, why), containers)


def _in_parallel(function: Callable[..., T], *arguments: Iterable[Any]) -> list[T]:
    """`function` over the zipped arguments, BERTH_PARALLEL_STARTS calls at a time, each thread with its
    own database connection; the results in order. The first error is raised once all calls end."""
    calls = list(zip(*arguments, strict=True))
    if len(calls) < 2:
        return [function(*call) for call in calls]

    def run(call: tuple[Any, ...]) -> T:
        try:
            return function(*call)
        finally:
            connections.close_all()  # this thread's own database connection

    with ThreadPoolExecutor(max_workers=min(len(calls), settings.BERTH_PARALLEL_STARTS)) as pool:
        return list(pool.map(run, calls))


def _start_missing(rollout: Rollout, process: ProcessType, quantity: int, size: Size) -> None:
    """Start the replicas that have no container at all, up to BERTH_PARALLEL_STARTS at once, each
    placed as if the others already ran. Nothing is replaced here, so nothing can go unserved."""
    if quantity < 2:
        return  # a lone replica goes the plain way, through _converge_slot
    release = rollout.release
    occupied = set(
        live_containers(app=rollout.app, process_type=process.name, canary=rollout.canary).values_list(
            "index", flat=True
        )
    )
    missing = [i for i in range(quantity) if i not in occupied and (process.name, i) not in rollout.deferred]
    if len(missing) < 2:
        return
    chosen = _choose(release, process, size, missing)
    images = {host.pk: prepare_host(host, release) for host in {c.host.pk: c.host for c in chosen}.values()}

    def start(index: int, where: Chosen) -> Container | str:
        """Start one replica and see it healthy: the container, or the reason it failed."""
        try:
            new = start_container(rollout.replica(process, index, size), where, image=images[where.host.pk])
            return _prove(new, process, replace(rollout, wait_ready=False)) or new
        except DeployFailed as failure:
            return str(failure)

    started = _in_parallel(start, missing, chosen)
    reasons = [outcome for outcome in started if isinstance(outcome, str)]
    healthy = [outcome for outcome in started if isinstance(outcome, Container)]
    if rollout.wait_ready and healthy:
        # After all have started: each start's ready time then overlaps the others'.
        results = wait_ready(healthy, process, rollout.deployment)
        reasons += [
            _not_ready(new, process, rollout, result)
            for new, result in zip(healthy, results, strict=True)
            if not result.healthy
        ]
    if reasons:
        raise DeployFailed(reasons[0] + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))


def _prove(new: Container, process: ProcessType, rollout: Rollout) -> str | None:
    """Wait until a new container is healthy and, unless the rollout skips it, ready; None when it is,
    else the reason it is not (it has been stopped)."""
    result = wait_healthy(new, process, rollout.deployment)
    if result.healthy and rollout.wait_ready:
        [result] = wait_ready([new], process, rollout.deployment)
    return None if result.healthy else _not_ready(new, process, rollout, result)


def _not_ready(new: Container, process: ProcessType, rollout: Rollout, result: HealthResult) -> str:
    """Stop a new container that did not become healthy or ready, and say why."""
    what = "ready" if new.healthy_at else "healthy"
    stop_container(new, rollout.deployment, f"it did not become {what}")
    return f"{process.name}.{new.index} of v{rollout.release.version} did not become {what}: {result.reason}"


def _converge_slot(rollout: Rollout, process: ProcessType, index: int, size: Size) -> None:
    deployment, release = rollout.deployment, rollout.release
    live = list(
        live_containers(app=rollout.app, process_type=process.name, index=index, canary=rollout.canary).select_related(
            "host"
        )
    )
    current = [c for c in live if _is_current(c, release, size, deployment)]
    if current:
        keep = current[0]
        for other in live:
            if other.pk != keep.pk:
                stop_container(other, deployment, f"replaced by {keep.name}")
        return
    if not live and (process.name, index) in rollout.deferred:
        slot = rollout.replica(process, index, size).slot
        step(deployment, f"{slot} waits out its crash back-off; a later pass starts it.")
        return
    # Containers of the target release that never became healthy (a previous attempt died) go first.
    for unproven in [c for c in live if c.release_id == release.pk and c.health != Container.Health.HEALTHY]:
        stop_container(unproven, deployment, "it never became healthy")
        live.remove(unproven)
    [where] = _choose(release, process, size, [index])
    new = start_container(rollout.replica(process, index, size), where)
    failure = _prove(new, process, rollout)
    if failure is not None:
        raise DeployFailed(failure)
    for old in live:
        stop_container(old, deployment, f"replaced by {new.name}")


def stale_deployments() -> QuerySet[Deployment]:
    """Deployments whose worker stopped proving it is alive, or that were never picked up."""
    now = timezone.now()
    stale = timedelta(seconds=settings.BERTH_DEPLOYMENT_STALE_SECONDS)
    return Deployment.objects.filter(
        state=Deployment.State.RUNNING, heartbeat_at__lt=now - stale
    ) | Deployment.objects.filter(state=Deployment.State.QUEUED, created_at__lt=now - stale)
