"""Shared reads about the fleet."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from berth.applications.models import App, Release
from berth.applications.specs import RUN_PROCESS_TYPE
from berth.deployments.models import Deployment
from berth.tenancy.models import User
from berth.tenancy.roles import Action

from .models import Container, DockerHost, Size

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# New containers that failed to become healthy on a host this recently count against it in placement.
RECENT_FAILURES_WINDOW = timedelta(minutes=10)


def live_containers(**filters: Any) -> QuerySet[Container]:
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


class Load(TypedDict):
    """The columns _HOSTS_WITH_LOAD adds to each host."""

    memory_used_mb: int
    same_release: int
    same_process_type: int
    organization_containers: int
    recent_failures: int


def hosts_with_load(
    *, organization_id: int, app_id: int, process_type: str, release_id: int
) -> list["WithAnnotations[DockerHost, Load]"]:
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
    return cast("list[WithAnnotations[DockerHost, Load]]", list(DockerHost.objects.raw(sql, params)))


# Crash history: containers that ended without Berth stopping them, `exited` (the process ended: a crash,
# an OOM kill, a normal exit) and `lost` (with their host). Containers Berth stopped (`removed`) are not exits.
ENDED_ON_THEIR_OWN = (Container.State.EXITED, Container.State.LOST)
EXITS_WINDOW = timedelta(hours=24)
EXITS_PER_PROCESS_TYPE = 50


@dataclass(frozen=True)
class ContainerExit:
    id: int
    name: str
    process_type: str
    index: int
    state: str
    host: str
    release: int
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime
    ran_seconds: Decimal | None
    # The deployment of the next container of the same slot (app, process type, index), if there is one yet.
    replaced_by: dict | None = field(kw_only=True)


# One statement, whatever the number of exits. A container's end is its finish time as the host reported
# it, or when it was last seen (a lost host's), or its creation. The replacement is found with LEAD over the
# app's containers from the oldest exit shown on, one scan, rather than one lookup per exit (the table has no
# index by slot, and a crash loop makes a slot's history long).
_EXITS = """
    WITH exits AS (
        SELECT c.*, COALESCE(c.finished_at, c.last_seen_at, c.created_at) AS ended_at,
               ROW_NUMBER() OVER (PARTITION BY c.process_type
                                  ORDER BY COALESCE(c.finished_at, c.last_seen_at, c.created_at) DESC, c.id DESC) AS nth
          FROM {containers} c
         WHERE c.app_id = %s AND c.state = ANY(%s) AND COALESCE(c.finished_at, c.last_seen_at, c.created_at) >= %s
           AND c.id IN ({scoped})
    ),
    shown AS (SELECT * FROM exits WHERE nth <= %s),
    slots AS (
        SELECT n.id, LEAD(n.deployment_id) OVER slot AS next_deployment_id
          FROM {containers} n
         WHERE n.app_id = %s AND n.created_at >= (SELECT MIN(created_at) FROM shown)
        WINDOW slot AS (PARTITION BY n.process_type, n."index" ORDER BY n.created_at, n.id)
    )
    SELECT s.id, s.name, s.process_type, s."index", s.state, host.name, release.version, s.exit_code, s.oom_killed,
           s.started_at, s.ended_at, ROUND(GREATEST(EXTRACT(EPOCH FROM (s.ended_at - s.started_at)), 0), 3),
           d.id, d.kind, d.state, d.created_at
      FROM shown s
      JOIN {hosts} host ON host.id = s.host_id
      JOIN {releases} release ON release.id = s.release_id
      JOIN slots ON slots.id = s.id
      LEFT JOIN {deployments} d ON d.id = slots.next_deployment_id
     ORDER BY s.ended_at DESC, s.id DESC
"""


def container_exits(*, actor: User, app: App, now: datetime) -> dict:
    """An app's recent exits, newest first: its containers that exited on their own or were lost with their
    host (states `exited` and `lost`; not those Berth stopped), that ended in the last 24 hours, at most 50
    per process type; each with the deployment that replaced it (None until one did). Scoped to what the
    actor may read (for_actor, app.view). Returns {"since", "per_process_type", "exits"}."""
    return _exits(app, now, _scoped(actor, app, ENDED_ON_THEIR_OWN))


def _scoped(actor: User, app: App, states: tuple[str, ...]) -> tuple[str, tuple]:
    """The SQL, and its parameters, of the ids of the app's containers in these states that the actor may
    read (for_actor, app.view), for a statement written in SQL to filter by. Narrowed to the states the
    statement reads, so PostgreSQL finds them by the (app, state) index, not among the app's whole history."""
    scoped = Container.objects.for_actor(actor, Action.APP_VIEW).filter(app=app, state__in=states)
    # One-off runs end as their command does, which is no crash of a replica (docs/runs.md).
    scoped = scoped.exclude(process_type=RUN_PROCESS_TYPE)
    return scoped.order_by().values("id").query.sql_with_params()


def _tables(**more: str) -> dict[str, str]:
    return {
        "containers": Container._meta.db_table,
        "hosts": DockerHost._meta.db_table,
        "releases": Release._meta.db_table,
        "deployments": Deployment._meta.db_table,
        **more,
    }


def _exits(app: App, now: datetime, scoped: tuple[str, tuple]) -> dict:
    since = now - EXITS_WINDOW
    params = [app.pk, list(ENDED_ON_THEIR_OWN), since, *scoped[1], EXITS_PER_PROCESS_TYPE, app.pk]
    with connection.cursor() as cursor:
        cursor.execute(_EXITS.format(**_tables(scoped=scoped[0])), params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    exits = [
        ContainerExit(
            *row[:12],
            replaced_by=None
            if row[12] is None
            else dict(zip(("id", "kind", "state", "created_at"), row[12:], strict=True)),
        )
        for row in rows
    ]
    return {"since": since, "per_process_type": EXITS_PER_PROCESS_TYPE, "exits": exits}


@dataclass(slots=True)
class LiveContainer:
    """A live container of an app as a list of them shows it, with how often its slot restarted and the
    last exit that made it restart. Plain values, not a Container: an app has up to a hundred, and
    building three model instances for each (container, host, release) cost more than rendering them."""

    id: int
    process_type: str
    slot: int  # the replica's index in its process type
    release: int  # the release's version
    host: str  # the host's name
    address: str  # the host's address
    published_port: int | None
    state: str
    health: str
    started_at: datetime | None
    # Exits of the container's slot (process type and index) while it ran this release, in the crash
    # history's window: each made Berth start a new container in the slot. A rollout's replacements are
    # not restarts (Berth stopped those), and a new release starts from none, as back-off does.
    restarts: int
    last_exit: ContainerExit | None


# What a list of an app's containers shows of them, and nothing else: a host's keys and a release's
# config are encrypted, and decrypting them for every row cost more than the rest of the page. In SQL, as
# the crash history is: through the ORM, building this query cost more than PostgreSQL spends running it,
# on the overview and every poll of it.
_LIVE_CONTAINERS = """
    SELECT c.id, c.process_type, c."index", release.version, host.name, host.address, c.published_port, c.state,
           c.health, c.started_at
      FROM {containers} c
      JOIN {hosts} host ON host.id = c.host_id
      JOIN {releases} release ON release.id = c.release_id
     WHERE c.app_id = %s AND c.state = ANY(%s) AND c.id IN ({scoped})
     ORDER BY c.process_type, c."index", c.created_at DESC
"""


def app_live_containers(*, actor: User, app: App, now: datetime) -> list[LiveContainer]:
    """The app's live containers in slot order, with their host's name and address and their release's
    version, each with its restarts, counted in the crash history (`container_exits`: exited on its own
    or lost with its host, in the last 24 hours, at most 50 per process type). Two queries, whatever the
    number of containers and exits."""
    scoped = _scoped(actor, app, (*Container.LIVE, *ENDED_ON_THEIR_OWN))  # built once, for both statements
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_CONTAINERS.format(**_tables(scoped=scoped[0])), [app.pk, list(Container.LIVE), *scoped[1]])
        containers = cursor.fetchall()
    exits: dict[tuple[str, int, int], list[ContainerExit]] = {}
    for ended in _exits(app, now, scoped)["exits"]:  # newest first
        exits.setdefault((ended.process_type, ended.index, ended.release), []).append(ended)
    rows = []
    for pk, process_type, index, version, host, address, port, state, health, started_at in containers:
        ended = exits.get((process_type, index, version), [])
        rows.append(
            LiveContainer(
                pk,
                process_type,
                index,
                version,
                host,
                address,
                port,
                state,
                health,
                started_at,
                restarts=len(ended),
                last_exit=ended[0] if ended else None,
            )
        )
    return rows
