"""Tasks. Each is thin: it takes ids, calls the code that does the work, and is safe to run twice."""

import json
import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from berth.billing import metering
from berth.billing.invoicing import invoices_run
from berth.core import task_names
from berth.core.crypto import decrypt
from berth.deployments.models import Deployment
from berth.fleet.models import DockerHost
from berth.metrics.services import metrics_prune
from berth.tenancy.services import invitations_purge_expired

from . import deploy, fleet_health, healing, locks, metrics, routing, runs
from .engine import Engine, EngineError

logger = logging.getLogger(__name__)


@shared_task(name=task_names.PURGE_EXPIRED_INVITATIONS)
def purge_expired_invitations() -> int:
    purged = invitations_purge_expired()
    logger.info("purged %d expired invitations", purged)
    return purged


@shared_task(name=task_names.HEALTH, ignore_result=False)
def health() -> dict:
    """Proves a worker is consuming and can reach the database; `make run` and tests call it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now(), pg_backend_pid()")
        database_time, session = cursor.fetchone()
    return {
        "worker_time": timezone.now().isoformat(),
        "database_time": database_time.isoformat(),
        "database_session": session,  # the PostgreSQL backend's pid: tells a reused connection from a new one
    }


# A run, and a deployment's release command, may take up to BERTH_RUN_MAX_TIMEOUT_SECONDS: the worker's
# default limits (worker/celery.py) would kill the task waiting for it. A run's own timeout ends it.
RUN_SOFT_TIME_LIMIT_S: int = settings.BERTH_RUN_MAX_TIMEOUT_SECONDS + 300
RUN_TIME_LIMIT_S: int = RUN_SOFT_TIME_LIMIT_S + 60


@shared_task(
    name=task_names.DEPLOY,
    bind=True,
    max_retries=None,
    soft_time_limit=RUN_SOFT_TIME_LIMIT_S,
    time_limit=RUN_TIME_LIMIT_S,
)
def run_deployment(self: Task, deployment_id: int, app_id: int | None = None) -> None:
    """Run the app's unfinished deployments, this one among them. Senders that know the app say so,
    which saves a query on every deploy's way to its first container."""
    if app_id is None:
        app_id = Deployment.objects.filter(pk=deployment_id).values_list("app_id", flat=True).first()
        if app_id is None:
            return
    try:
        deploy.run_app_deployments(app_id)
    except locks.Busy:
        # Another worker is deploying this app and will run this deployment after its own.
        raise self.retry(countdown=2) from None


@shared_task(name=task_names.RUN, soft_time_limit=RUN_SOFT_TIME_LIMIT_S, time_limit=RUN_TIME_LIMIT_S)
def run_once(run_id: int) -> None:
    """Carry out a one-off run (docs/runs.md); nothing when another worker has it and is alive."""
    runs.run_once(run_id)


@shared_task(name=task_names.CHECK_HOSTS)
def check_hosts() -> None:
    fleet_health.check_hosts()


@shared_task(name=task_names.CHECK_ENGINE, ignore_result=False)
def check_engine(sealed: str) -> dict:
    """Connect to an engine a host is about to be registered with (fleet.services.host_connection_test).
    `sealed` is its URL and credentials, encrypted; the answer holds no secret."""
    host = DockerHost(name="the new host", **json.loads(decrypt(sealed)))
    try:
        with Engine(host, timeout=10) as engine:
            info = engine.info()
    except EngineError as error:
        return {"error": str(error), "field": error.field or "engine_url"}
    return {"version": info["version"], "engine_id": info["engine_id"], "userns_remap": info["userns_remap"]}


@shared_task(name=task_names.RECONCILE_HOST)
def reconcile_host(host_id: int, suspects: list[str] | None = None) -> None:
    """A pass over one host, woken by its Docker events about the containers `suspects`."""
    fleet_health.observe_host(host_id, suspects=suspects or ())


@shared_task(name=task_names.RECONCILE)
def reconcile_fleet() -> None:
    """The periodic pass: observe every host, heal every app, and re-send deployments nobody runs."""
    fleet_health.observe_fleet()


@shared_task(name=task_names.PROBE)
def probe_fleet() -> None:
    fleet_health.probe_fleet()


@shared_task(name=task_names.RECONCILE_APP)
def reconcile_app(app_id: int) -> None:
    """One app again, once a slot's crash back-off is over (or later still, if it is not yet)."""
    healing.heal_apps([app_id])


@shared_task(name=task_names.METER)
def usage_sync_pass() -> dict:
    """Close and open ledger intervals at period boundaries and price changes of running containers, and
    bring the daily usage roll-up up to date."""
    return metering.usage_sync_pass(now=timezone.now())


@shared_task(name=task_names.INVOICES)
def generate_invoices() -> dict:
    return invoices_run(now=timezone.now())


@shared_task(name=task_names.ROUTES_PUSH)
def push_routes(app_ids: list[int]) -> None:
    """After a change the control plane made (a domain, a redirect setting): these apps' routes, now."""
    routing.push(app_ids)


@shared_task(name=task_names.ROUTES_SYNC)
def sync_routes() -> None:
    """Every router against the whole route table, repairing any drift."""
    routing.sync_routers()


@shared_task(name=task_names.METRICS_SAMPLE)
def sample_metrics() -> dict:
    """Read every running container and every router once, into the metrics' buckets."""
    return metrics.sample(now=timezone.now())


@shared_task(name=task_names.METRICS_PRUNE)
def prune_metrics() -> dict:
    """Delete the metrics' buckets past their retention."""
    return metrics_prune(now=timezone.now())
