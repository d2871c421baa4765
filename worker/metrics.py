"""Sampling metrics (docs/metrics.md): every running container's counters, read once from its engine, and
every router's per-backend counters, read from its runtime API; `berth.metrics.services` turns them into
figures.

This runs as its own periodic task, never on the reconcile path: a slow engine or router holds up only
this pass. Hosts are read at once, each by a thread, and each host's containers at once too
(Engine.stats_many); the database is used only before and after.
"""

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.utils import timezone

from berth.fleet.models import Container, DockerHost, Router
from berth.metrics.services import (
    ContainerReading,
    RouteReading,
    container_readings_record,
    restarts_count,
    route_readings_record,
)
from berth.routing.models import RouteSlot, backend_name

from . import locks
from .engine import Engine, EngineError
from .haproxy import RouterRefused, RouterUnreachable, RuntimeAPI

logger = logging.getLogger(__name__)

# An engine that takes longer than this to answer is left out of this pass, not waited for.
ENGINE_TIMEOUT_S = 10
# Hosts read at the same time.
PARALLEL_HOSTS = 8
# Exits are counted again over this window on every pass: the reconciler may record one a while after it happened.
RESTARTS_WINDOW = timedelta(minutes=5)


def sample(*, now: datetime) -> dict:
    """One pass; a pass still running elsewhere makes this one a no-op (the next comes soon)."""
    try:
        with locks.advisory_lock(locks.METRICS, 0):
            containers = container_readings_record(readings=read_containers())
            routes = route_readings_record(readings=read_routers())
            restarts_count(since=now - RESTARTS_WINDOW)
    except locks.Busy:
        return {"skipped": True}
    return {"containers": containers, "routes": routes}


def read_containers() -> list[ContainerReading]:
    """A reading of every container Berth runs on a host that answers."""
    running = (
        Container.objects.filter(state=Container.State.RUNNING, host__status__in=DockerHost.ANSWERING)
        .exclude(docker_id="")
        .select_related("host", "size")
    )
    by_host: dict[int, list[Container]] = defaultdict(list)
    hosts: dict[int, DockerHost] = {}
    for container in running:
        by_host[container.host_id].append(container)
        hosts[container.host_id] = container.host
    if not by_host:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL_HOSTS, len(by_host))) as pool:
        results = pool.map(lambda host_id: _read_host(hosts[host_id], by_host[host_id]), list(by_host))
        return [reading for readings in results for reading in readings]


def _read_host(host: DockerHost, containers: list[Container]) -> list[ContainerReading]:
    try:
        with Engine(host, timeout=ENGINE_TIMEOUT_S) as engine:
            found = engine.stats_many([container.docker_id for container in containers])
    except EngineError as error:
        logger.warning("metrics: %s", error)
        return []
    readings = []
    for container in containers:
        stats = found.get(container.docker_id)
        if stats is None:
            continue
        readings.append(
            ContainerReading(
                app_id=container.app_id,
                process_type=container.process_type,
                index=container.index,
                canary=container.canary,
                docker_id=container.docker_id,
                read_at=stats.read_at,
                cpu_ns=stats.cpu_ns,
                memory_bytes=stats.memory_bytes,
                # The engine's limit is the size's, unless the host has less memory than that.
                memory_limit_bytes=stats.memory_limit_bytes or container.size.memory_mb * 1024 * 1024,
                cpu_limit_millis=container.size.cpu_millis,
            )
        )
    return readings


def read_routers() -> list[RouteReading]:
    """A reading of every routed app's backend on every active router that answers."""
    slots = RouteSlot.objects.values_list("number", "app_id")
    apps_by_backend = {backend_name(number): app_id for number, app_id in slots}
    readings = []
    for router in Router.objects.filter(state=Router.State.ACTIVE):
        try:
            life, backends = RuntimeAPI(router.admin_url).backend_stats()
        except (RouterUnreachable, RouterRefused) as error:
            logger.warning("metrics: router %s: %s", router.name, error)
            continue
        read_at = timezone.now()
        for stats in backends:
            app_id = apps_by_backend.get(stats.backend)
            if app_id is None:
                continue
            readings.append(
                RouteReading(
                    router_id=router.pk,
                    backend=stats.backend,
                    app_id=app_id,
                    read_at=read_at,
                    life=life,
                    counters={
                        "requests": stats.requests,
                        **{f"status_{name}": count for name, count in stats.status.items()},
                    },
                    response_ms=stats.response_ms,
                    total_ms=stats.total_ms,
                )
            )
    return readings
