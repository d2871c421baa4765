"""Shared reads about the fleet."""

from datetime import timedelta

from django.utils import timezone

from .models import Container, DockerHost, Size

# New containers that failed to become healthy on a host this recently count against it in placement.
RECENT_FAILURES_WINDOW = timedelta(minutes=10)


def live_containers(**filters):
    return Container.objects.filter(state__in=Container.LIVE, **filters)


# Placement reads this once per new container, on the way from a deploy request to its first healthy
# container; written as SQL because the ORM spent ~4 ms of Python compiling its four filtered
# aggregates, three times the query's own cost. Hosts that take containers are active and up.
# A recent failure is a container created in the window that never passed its health check and is
# no longer live, or was found unhealthy (an index on never-healthy containers keeps this cheap).
_HOSTS_WITH_LOAD = """
    SELECT host.*,
           (SELECT COUNT(*) FROM {containers} failed
             WHERE failed.host_id = host.id AND failed.healthy_at IS NULL AND failed.created_at >= %(failed_since)s
               AND (failed.state <> ALL(%(live)s) OR failed.health = %(unhealthy)s)) AS recent_failures,
           COALESCE(SUM(size.memory_mb), 0) AS memory_used_mb,
           COUNT(live.id) FILTER (WHERE live.organization_id = %(organization)s) AS organization_containers,
           COUNT(live.id) FILTER (WHERE live.app_id = %(app)s AND live.process_type = %(process_type)s
                                  AND live.release_id = %(release)s) AS same_release,
           COUNT(live.id) FILTER (WHERE live.app_id = %(app)s AND live.process_type = %(process_type)s)
               AS same_process_type
      FROM {hosts} host
      LEFT JOIN {containers} live ON live.host_id = host.id AND live.state = ANY(%(live)s)
      LEFT JOIN {sizes} size ON size.id = live.size_id
     WHERE host.state = %(state)s AND host.status = %(status)s
     GROUP BY host.id
     ORDER BY host.id
"""


def hosts_with_load(*, organization_id: int, app_id: int, process_type: str, release_id: int) -> list[DockerHost]:
    """Hosts that take new containers, each with the memory its live containers use, how many of them are the
    organization's, this process type's and this release's, and how many new containers recently failed there."""
    sql = _HOSTS_WITH_LOAD.format(
        hosts=DockerHost._meta.db_table, containers=Container._meta.db_table, sizes=Size._meta.db_table
    )
    params = {
        "organization": organization_id,
        "app": app_id,
        "process_type": process_type,
        "release": release_id,
        "live": list(Container.LIVE),
        "unhealthy": Container.Health.UNHEALTHY,
        "failed_since": timezone.now() - RECENT_FAILURES_WINDOW,
        "state": DockerHost.State.ACTIVE,
        "status": DockerHost.Status.UP,
    }
    return list(DockerHost.objects.raw(sql, params))
