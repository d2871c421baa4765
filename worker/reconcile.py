"""Level-triggered reconciliation: make the database agree with what the hosts really run.

- `observe_host` makes the database agree with one engine: it records exits, rebuilds rows for
  unknown containers from their labels, and removes orphans and stale containers.
- `check_host` is the heartbeat: it marks a host up, degraded when its engine answers but its address
  does not (`datapath`), or down after the grace period, losing its containers at the last time they
  were seen.
- `probe_host` probes the health of a host's serving containers.
What to do about a drifted app (heal it, back off, roll back) is `healing.py`'s. Docker events only
wake these early; the periodic pass corrects whatever events missed.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from berth.applications.models import Release
from berth.applications.specs import RUN_PROCESS_TYPE
from berth.deployments.models import Deployment, Run
from berth.deployments.selectors import active_canary
from berth.fleet import transitions
from berth.fleet.models import Container, DockerHost, Size
from berth.fleet.selectors import live_containers

from . import datapath, locks
from .engine import DOCKER_DEAD, DOCKER_ENDED, DOCKER_RUNNING, Engine, EngineError
from .logs import flush_before_removal
from .runtime import stop_container

logger = logging.getLogger(__name__)


def check_host(host: DockerHost) -> bool:
    """Heartbeat one host; returns whether it answered."""
    now = timezone.now()
    try:
        with Engine(host, timeout=5) as engine:
            info = engine.info()
    except EngineError as error:
        DockerHost.objects.filter(pk=host.pk).update(last_error=str(error)[:2000])
        grace = timedelta(seconds=settings.BERTH_HOST_DOWN_AFTER_SECONDS)
        if host.status != DockerHost.Status.DOWN and (host.last_heartbeat_at or host.created_at) < now - grace:
            mark_host_down(host)
        return False
    verdict = datapath.check(host)  # the engine answers; do the host's published ports?
    DockerHost.objects.filter(pk=host.pk).update(
        status=verdict.status,
        last_heartbeat_at=now,
        last_error=verdict.reason,
        engine_version=info["version"],
        engine_id=info["engine_id"],
        userns_remap=info["userns_remap"],
    )
    return True


@transaction.atomic
def mark_host_down(host: DockerHost) -> list[int]:
    """The host is gone: its containers are lost as of the last time they were seen running."""
    DockerHost.objects.filter(pk=host.pk).update(status=DockerHost.Status.DOWN)
    lost = list(live_containers(host=host).select_for_update())
    app_ids = sorted({c.app_id for c in lost})
    transitions.containers_lost(lost)
    logger.warning("host %s is down; %d containers lost", host.name, len(lost))
    return app_ids


# How long a reconcile of a host waits for another worker's pass of the same host to end.
HOST_LOCK_WAIT_S = 30.0


def observe_host(host: DockerHost, *, suspects: Iterable[str] = ()) -> set[int]:
    """Make the rows of one host agree with its engine; returns the ids of apps that changed.

    One pass per host at a time (two would race to remove the same container). A deployment in
    progress writes a container's row just after the engine starts it, and marks a row `stopping`
    before removing its container: what such a deployment owns is left to it (see `_deploying`).
    A `stopping` row whose deployment is over was left by a worker that died mid-stop: finish it.
    `suspects` are containers Docker's events just spoke of: the engine's list may not show yet that
    one died, so they are inspected (which waits for the engine to finish handling their exit).
    """
    with locks.advisory_lock(locks.HOST, host.pk, wait_s=HOST_LOCK_WAIT_S), Engine(host) as engine:
        # Rows first, then the engine: a container started in between has no row yet and is left
        # to its deployment, whereas the other order would report its fresh row as vanished.
        rows = {
            c.docker_id: c
            for c in Container.objects.filter(host=host)
            .exclude(removed_at__isnull=False)
            .exclude(state=Container.State.REMOVED)
        }
        summaries = {s["docker_id"]: s for s in engine.list_managed()}
        for docker_id in set(suspects) & summaries.keys():
            if summaries[docker_id]["state"] == DOCKER_RUNNING:
                observed = engine.inspect(docker_id)
                summaries[docker_id]["state"] = observed.state if observed else DOCKER_DEAD
        deploying = _deploying()
        runs_under_way = set(Run.objects.filter(state__in=Run.UNFINISHED).values_list("pk", flat=True))
        for stopping in rows.values():  # the container may be gone already; stop_container records what it can
            if stopping.state == Container.State.STOPPING and stopping.app_id not in deploying.app_ids:
                stop_container(stopping, None, "its deployment ended while stopping it")
        changed: set[int] = set()
        now = timezone.now()
        seen_running = []
        for docker_id, summary in summaries.items():
            row = rows.get(docker_id)
            if summary["labels"].get("berth.process_type") == RUN_PROCESS_TYPE:
                if _observe_run(engine, row, summary, runs_under_way) and row is not None:
                    seen_running.append(row.pk)
                continue
            if row is None:
                if _int(summary["labels"].get("berth.deployment")) not in deploying.deployment_ids:
                    changed |= _adopt_or_remove(engine, host, summary)
            elif row.state == Container.State.STOPPING:
                continue  # its deployment is stopping it, or the loop above just did
            elif row.state in (Container.State.LOST, Container.State.EXITED):
                flush_before_removal(engine, docker_id, summary["labels"])
                engine.remove(docker_id)  # stale: Berth already replaced it
                transitions.container_deleted(row, at=now)
            elif summary["state"] in DOCKER_ENDED and row.is_live:
                transitions.container_exited(row, engine.inspect(docker_id))
                flush_before_removal(engine, docker_id, summary["labels"])
                engine.remove(docker_id)
                transitions.container_deleted(row, at=timezone.now())
                changed.add(row.app_id)
            elif summary["state"] == DOCKER_RUNNING:
                seen_running.append(row.pk)
        transitions.containers_seen_running(seen_running, at=now)
        engine.prune_networks()
        vanished = [row for docker_id, row in rows.items() if docker_id not in summaries and row.is_live]
        for row in vanished:  # removed behind Berth's back
            transitions.containers_lost([row], removed_at=now)
            changed.add(row.app_id)
    return changed


def _observe_run(engine: Engine, row: Container | None, summary: dict, under_way: set[int]) -> bool:
    """A one-off run's container (docs/runs.md), never adopted as a replica: while its run is under way its
    worker records its end (after storing its last lines), and this pass only notes it running (True);
    once the run is over, or unknown, nothing may keep it, and it is removed."""
    if _int(summary["labels"].get("berth.index")) in under_way:
        return row is not None and summary["state"] == DOCKER_RUNNING
    flush_before_removal(engine, summary["docker_id"], summary["labels"])
    if row is not None and row.is_live:
        observed = engine.inspect(row.docker_id)
        engine.remove(row.docker_id)
        transitions.container_removed(row, observed)
    else:
        engine.remove(summary["docker_id"])
        if row is not None:
            transitions.container_deleted(row, at=timezone.now())
    return False


@dataclass(frozen=True)
class Deploying:
    deployment_ids: frozenset[int]
    app_ids: frozenset[int]


def _deploying() -> Deploying:
    """Deployments under way now, and their apps."""
    pairs = list(Deployment.objects.filter(state__in=Deployment.UNFINISHED).values_list("pk", "app_id"))
    return Deploying(frozenset(pk for pk, _ in pairs), frozenset(app_id for _, app_id in pairs))


def _adopt_or_remove(engine: Engine, host: DockerHost, summary: dict) -> set[int]:
    """A labelled container with no row: rebuild the row from its labels, or remove an orphan."""
    labels = summary["labels"]
    release_id, app_id = _int(labels.get("berth.release_id")), _int(labels.get("berth.app_id"))
    release = (
        None
        if release_id is None or app_id is None
        else Release.objects.filter(pk=release_id, app_id=app_id).select_related("app").first()
    )
    size = Size.objects.filter(name=labels.get("berth.size")).first()
    observed = engine.inspect(summary["docker_id"])
    if release is None or size is None or observed is None or observed.state != DOCKER_RUNNING:
        flush_before_removal(engine, summary["docker_id"], labels)
        engine.remove(summary["docker_id"])
        return set()
    deployment_id = _int(labels.get("berth.deployment"))
    # A canary's replica stays one only while that canary is active; one adopted later (after a promotion,
    # say) is left to the converge as one of the release's, which it then is or is not.
    canary = labels.get("berth.canary") == "true" and (
        (active := active_canary(release.app_id)) is not None and active.release_id == release.pk
    )
    transitions.container_adopted(
        host=host,
        observed=observed,
        release=release,
        process_type=labels.get("berth.process_type", ""),
        index=_int(labels.get("berth.index")) or 0,
        size=size,
        deployment=Deployment.objects.filter(pk=deployment_id).first() if deployment_id else None,
        canary=canary,
    )
    return {release.app_id}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def probe_host(host: DockerHost) -> set[int]:
    """Probe the healthy-or-failing running containers of one host; returns apps with a newly unhealthy one."""
    from .probes import probe

    changed = set()
    running = Container.objects.filter(
        host=host, state=Container.State.RUNNING, health__in=[Container.Health.HEALTHY, Container.Health.UNKNOWN]
    )
    with Engine(host, timeout=5) as engine:
        for container in running.select_related("release"):
            process = container.release.processes.get(container.process_type)
            if process is None or process.health.type == "none":
                continue
            healthy, _ = probe(
                process.health,
                address=host.address,
                port=container.published_port,
                engine=engine,
                docker_id=container.docker_id,
            )
            if transitions.container_probed(container, healthy=healthy, retries=process.health.retries):
                changed.add(container.app_id)
    return changed
