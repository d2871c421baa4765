"""The fleet's heartbeat: every registered host checked (reconcile.check_host), and what a change of its
health calls for. A host that answers again gets a pass over its containers at once; one that went
down has its apps healed elsewhere."""

from berth.applications.models import App
from berth.core import task_names
from berth.core.queue import enqueue
from berth.fleet.models import DockerHost

from . import healing, reconcile


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
                healing.heal_apps(
                    list(App.objects.filter(containers__host=host).values_list("pk", flat=True).distinct())
                )
