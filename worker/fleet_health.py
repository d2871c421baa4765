"""The fleet's periodic and woken passes: the heartbeat of every host (reconcile.check_host) and what a
change of its health calls for, the observing pass over each host and the probes of serving containers,
each followed by healing the apps it found drifted (healing.heal_apps). Tasks call these with ids."""

import logging
from collections.abc import Iterable

from berth.applications.models import App
from berth.core import task_names
from berth.core.queue import enqueue
from berth.fleet.models import DockerHost

from . import deploy, healing, reconcile, routing, runs
from .engine import EngineError

logger = logging.getLogger(__name__)


def check_hosts() -> None:
    """Heartbeat each host that is not retired, then wake a pass for one that came back, or heal the
    apps of one that went down."""
    for host in DockerHost.objects.exclude(state=DockerHost.State.RETIRED):
        was_down = host.status not in DockerHost.ANSWERING
        if reconcile.check_host(host) and was_down:
            enqueue(task_names.RECONCILE_HOST, host.pk)
        elif host.status in DockerHost.ANSWERING:
            host.refresh_from_db()
            if host.status == DockerHost.Status.DOWN:
                lost = list(App.objects.filter(containers__host=host).values_list("pk", flat=True).distinct())
                routing.push(lost)
                healing.heal_apps(lost)


def observe_host(host_id: int, suspects: Iterable[str] = ()) -> None:
    """A pass over one host that answers, inspecting the containers `suspects` (docker ids) rather than
    trusting its list, then heal the apps whose containers changed."""
    host = DockerHost.objects.filter(pk=host_id, status__in=DockerHost.ANSWERING).first()
    if host is None:
        return
    try:
        changed = reconcile.observe_host(host, suspects=suspects)
    except EngineError as error:
        logger.warning("reconcile of %s failed: %s", host.name, error)
        return
    routing.push(changed)
    healing.heal_apps(sorted(changed))


def observe_fleet() -> None:
    """The periodic pass: observe every host, heal every app, and re-send deployments and runs nobody runs."""
    for host in DockerHost.objects.filter(status__in=DockerHost.ANSWERING):
        try:
            reconcile.observe_host(host)
        except EngineError as error:
            logger.warning("reconcile of %s failed: %s", host.name, error)
    healing.heal_apps(list(App.objects.filter(current_release__isnull=False).values_list("pk", flat=True)))
    for deployment_id in deploy.stale_deployments().values_list("pk", flat=True):
        enqueue(task_names.DEPLOY, deployment_id)
    for run_id in runs.stale_runs().values_list("pk", flat=True):
        enqueue(task_names.RUN, run_id)


def probe_fleet() -> None:
    """Probe the serving containers of every host that answers, then heal the apps whose health changed."""
    changed = set()
    for host in DockerHost.objects.filter(status__in=DockerHost.ANSWERING):
        try:
            changed |= reconcile.probe_host(host)
        except EngineError as error:
            logger.warning("probing %s failed: %s", host.name, error)
    routing.push(changed)
    healing.heal_apps(sorted(changed))
