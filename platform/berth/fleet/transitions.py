"""A container's state changes: the only code that writes a `Container` row (a test holds every other
module to it).

Each function is one transition, as the worker observes it on a host: it writes the row (or rows) and,
when the transition changes what the usage ledger reads, brings the ledger up to date in the same
place (`billing.metering.usage_sync`), so no caller can forget it. The ledger reads when a container
started and whether and when it ended, so metering is part of:

- `container_healthy`: a new container's interval opens once it passed its health check (the ledger
  takes the host's StartedAt whenever it is written, so a deploy does not wait for it before that);
- `container_adopted`: a running container rebuilt from its labels;
- `container_run_started`: a one-off run's container, billed from its start (it has no health check);
- `container_exited`, `container_removed`, `containers_lost`: its interval closes at the host's
  FinishedAt, or at the last time it was seen running.

The other transitions change its health, or that Berth is stopping it or deleted it from its engine,
which the ledger does not read. A start recorded by `container_started` that never reaches one of the
transitions above (its worker died) is metered by the periodic pass (`metering.usage_sync_all`).

`observed` is what the engine reports of the container (the worker's `ObservedContainer`), or None when
the engine no longer knows it.
"""

from datetime import datetime
from typing import Protocol

from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from berth.applications.models import Release
from berth.applications.specs import RUN_PROCESS_TYPE, ProcessType
from berth.billing.metering import usage_sync
from berth.deployments.models import Deployment
from berth.logs import store as logs

from .models import Container, DockerHost, Size


class Observed(Protocol):
    """What an engine reports of a container (worker.engine.ObservedContainer)."""

    # Properties: the engine's report is read, never written (ObservedContainer is frozen).
    @property
    def docker_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def oom_killed(self) -> bool: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def published_port(self) -> int | None: ...


def _usage_sync(*container_ids: int) -> None:
    """Bring the usage ledger up to what was just observed of these containers."""
    usage_sync(container_ids, now=timezone.now())


def _write(container: Container, **changes) -> None:
    """Write changes to one row and to the caller's copy of it."""
    Container.objects.filter(pk=container.pk).update(**changes)
    for name, value in changes.items():
        setattr(container, name, value)


def _finished_at(container: Container, observed: Observed | None) -> datetime:
    """When a container ended: the host's FinishedAt, else the last time it was seen running (a container
    already gone, removed by hand or by a worker that died before saying so)."""
    return (observed.finished_at if observed else None) or container.last_seen_at or timezone.now()


def container_started(
    *,
    host: DockerHost,
    docker_id: str,
    name: str,
    release: Release,
    deployment: Deployment | None,
    process: ProcessType,
    index: int,
    size: Size,
    image_digest: str,
    observed: Observed | None,
    running: bool,
    healthy: bool,
    canary: bool = False,
) -> Container:
    """Record a container the worker just started and probed once: healthy if it answered at once,
    starting otherwise. Its usage is written by `container_healthy`, for one healthy at once too."""
    now = timezone.now()
    return Container.objects.create(
        host=host,
        docker_id=docker_id,
        name=name,
        organization_id=release.app.organization_id,
        app=release.app,
        release=release,
        deployment=deployment,
        process_type=process.name,
        index=index,
        canary=canary,
        size=size,
        state=Container.State.RUNNING if running else Container.State.CREATED,
        health=Container.Health.HEALTHY if healthy else Container.Health.STARTING,
        # A first probe that failed counts against the retries only when the check grants no start grace.
        health_failures=1 if running and not healthy and not process.health.start_period_s else 0,
        published_port=observed.published_port if observed else None,
        image_digest=image_digest,
        started_at=observed.started_at if observed else None,
        healthy_at=now if healthy else None,
        last_seen_at=now,
    )


def container_run_started(
    *,
    host: DockerHost,
    docker_id: str,
    name: str,
    release: Release,
    deployment: Deployment | None,
    run_id: int,
    size: Size,
    image_digest: str,
    observed: Observed | None,
) -> Container:
    """Record the container of a one-off run or a release command (deployments.Run) the worker just
    started: process type `run`, index the run's id, never a replica. It has no health check to pass, so
    its usage opens at once, from the host's StartedAt (one that already ended is closed at once). A worker
    that takes the run over may find its row written already (its first worker died just after): that row."""
    container, _ = Container.objects.get_or_create(
        host=host,
        docker_id=docker_id,
        defaults={
            "name": name,
            "organization_id": release.app.organization_id,
            "app": release.app,
            "release": release,
            "deployment": deployment,
            "process_type": RUN_PROCESS_TYPE,
            "index": run_id,
            "size": size,
            "state": Container.State.RUNNING,
            "health": Container.Health.UNKNOWN,
            "image_digest": image_digest,
            "started_at": observed.started_at if observed else None,
            "last_seen_at": timezone.now(),
        },
    )
    _usage_sync(container.pk)
    return container


def container_healthy(container: Container, observed: Observed | None = None, *, usage: bool = True) -> None:
    """A new container passed its health check: it runs, and its usage is written (unless `usage` is
    False: the caller writes it with container_usage_sync, after what cannot wait). One recorded healthy
    at its start (`container_started`) has only its usage to write."""
    if container.health != Container.Health.HEALTHY or container.healthy_at is None:
        now = timezone.now()
        _write(
            container,
            health=Container.Health.HEALTHY,
            health_failures=0,
            state=Container.State.RUNNING,
            started_at=observed.started_at if observed else container.started_at,
            healthy_at=now,
            last_seen_at=now,
        )
    if usage:
        _usage_sync(container.pk)


def container_usage_sync(container: Container) -> None:
    """Write the usage of a container that just became healthy (see container_healthy)."""
    _usage_sync(container.pk)


def container_unhealthy(container: Container) -> None:
    """A container failed its health check as many times as the check allows."""
    _write(container, health=Container.Health.UNHEALTHY)
    _say_unhealthy(container)


def _say_unhealthy(container: Container) -> None:
    text = f"{_slot(container)} failed its health check {container.health_failures or 'too many'} times"
    logs.say(container.app_id, "health", text, process_type=container.process_type)


def _slot(container: Container) -> str:
    return f"{container.process_type}.{container.index} ({container.name})"


def container_probed(container: Container, *, healthy: bool, retries: int) -> bool:
    """One health probe of a serving container (the periodic probe): a pass clears its failures, a
    failure counts, and `retries` of them in a row make it unhealthy. Returns whether it now is."""
    if healthy:
        if container.health != Container.Health.HEALTHY or container.health_failures:
            Container.objects.filter(pk=container.pk).update(
                health=Container.Health.HEALTHY,
                health_failures=0,
                healthy_at=Coalesce("healthy_at", Value(timezone.now())),
            )
        return False
    failures = container.health_failures + 1
    unhealthy = failures >= retries
    Container.objects.filter(pk=container.pk).update(
        health_failures=failures, health=Container.Health.UNHEALTHY if unhealthy else container.health
    )
    if unhealthy and container.health != Container.Health.UNHEALTHY:
        container.health_failures = failures
        _say_unhealthy(container)
    return unhealthy


def container_exited(container: Container, observed: Observed | None) -> None:
    """The container stopped without Berth asking: a crash, an OOM kill or a normal exit, as the host
    reports it. Only a live row changes (a stop Berth began is Berth's to record)."""
    exited = Container.objects.filter(pk=container.pk, state__in=Container.LIVE).update(
        state=Container.State.EXITED,
        exit_code=observed.exit_code if observed else None,
        oom_killed=bool(observed and observed.oom_killed),
        finished_at=_finished_at(container, observed),
        health=Container.Health.UNKNOWN,
    )
    _usage_sync(container.pk)
    if exited:  # said once, by whichever pass saw it first
        code = observed.exit_code if observed else "unknown"
        oom = " (killed for running out of memory)" if observed and observed.oom_killed else ""
        logs.say(
            container.app_id,
            "crash",
            f"{_slot(container)} exited with code {code}{oom}",
            process_type=container.process_type,
        )


def container_stopping(container: Container) -> None:
    """Berth is about to stop the container (a deployment or a pass owns it until it is removed)."""
    _write(container, state=Container.State.STOPPING)


def container_removed(container: Container, observed: Observed | None) -> None:
    """Berth stopped the container and deleted it from its engine; the row keeps the host's times."""
    Container.objects.filter(pk=container.pk).update(
        state=Container.State.REMOVED,
        removed_at=timezone.now(),
        finished_at=_finished_at(container, observed),
        exit_code=observed.exit_code if observed else None,
    )
    _usage_sync(container.pk)


def containers_lost(containers, *, removed_at: datetime | None = None) -> None:
    """Containers lost with their host, or that vanished from it (`removed_at`: when that was seen):
    they ended the last time they were seen running."""
    ids = [container.pk for container in containers]
    changes = {
        "state": Container.State.LOST,
        "finished_at": Coalesce("last_seen_at", "started_at"),
        "health": Container.Health.UNKNOWN,
    }
    if removed_at is not None:
        changes["removed_at"] = removed_at
    Container.objects.filter(pk__in=ids).update(**changes)
    _usage_sync(*ids)


def container_deleted(container: Container, *, at: datetime) -> None:
    """Berth deleted an ended container (exited, or lost and since replaced) from its engine."""
    Container.objects.filter(pk=container.pk).update(removed_at=at)


def containers_seen_running(container_ids, *, at: datetime) -> None:
    """A pass saw these containers running on their host."""
    Container.objects.filter(pk__in=container_ids).update(last_seen_at=at)


def container_adopted(
    *,
    host: DockerHost,
    observed: Observed,
    release: Release,
    process_type: str,
    index: int,
    size: Size,
    deployment: Deployment | None,
    canary: bool = False,
) -> Container:
    """A running container of Berth's with no row (its deployment's worker died before writing one):
    its row is rebuilt from its labels, and its usage written."""
    adopted, _ = Container.objects.get_or_create(
        host=host,
        docker_id=observed.docker_id,
        defaults={
            "name": observed.name,
            "organization_id": release.app.organization_id,
            "app": release.app,
            "release": release,
            "process_type": process_type,
            "index": index,
            "canary": canary,
            "size": size,
            "state": Container.State.RUNNING,
            "health": Container.Health.UNKNOWN,
            "published_port": observed.published_port,
            "started_at": observed.started_at,
            "last_seen_at": timezone.now(),
            "deployment": deployment,
        },
    )
    _usage_sync(adopted.pk)
    return adopted


def containers_promoted(*, app_id: int, release_id: int) -> int:
    """The live replicas of a promoted canary become replicas of the app's release (their slots become the
    release's slots of the same index): how many did. Usage is unchanged: they run on as they did."""
    return Container.objects.filter(app_id=app_id, release_id=release_id, canary=True, state__in=Container.LIVE).update(
        canary=False
    )
