"""The name of every task the worker runs: the one list the control plane and the worker share.

The control plane sends these by name (berth.core.queue) and never imports the worker's code; the
worker registers its tasks under them (worker/tasks.py) and schedules some (worker/celery.py).
Names only: importing this module imports neither Celery nor Django.
"""

HEALTH = "berth.health"
PURGE_EXPIRED_INVITATIONS = "berth.tenancy.purge_expired_invitations"
DEPLOY = "berth.deployments.run"
CHECK_HOSTS = "berth.fleet.check_hosts"
CHECK_ENGINE = "berth.fleet.check_engine"
RECONCILE = "berth.fleet.reconcile"
RECONCILE_HOST = "berth.fleet.reconcile_host"
RECONCILE_APP = "berth.fleet.reconcile_app"
PROBE = "berth.fleet.probe"
METER = "berth.billing.meter"
INVOICES = "berth.billing.invoices"
ROUTES_PUSH = "berth.routing.push"
ROUTES_SYNC = "berth.routing.sync"
METRICS_SAMPLE = "berth.metrics.sample"
METRICS_PRUNE = "berth.metrics.prune"
RUN = "berth.deployments.run_once"
