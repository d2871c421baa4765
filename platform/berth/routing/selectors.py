"""The route table: what every router should serve, derived from PostgreSQL alone (docs/routing.md)."""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from berth.applications.models import App, Release
from berth.deployments.models import Canary
from berth.fleet.models import Container, DockerHost, Router

from .hostnames import default_hostname, hostname_url
from .models import Domain, RouteSlot, backend_name
from .weights import split_weights

# A server's weight when all of an app's servers share its traffic equally (HAProxy allows 1 to 256).
EVEN_WEIGHT = 100


@dataclass(frozen=True)
class Upstream:
    """One replica the router sends requests to: named by its container, so a name is never reused."""

    name: str
    address: str
    port: int
    weight: int = EVEN_WEIGHT


@dataclass(frozen=True)
class AppRoute:
    app_id: int
    backend: str
    hostnames: tuple[str, ...]
    upstreams: tuple[Upstream, ...]
    https_only: bool = False


def upstream_name(container_id: int) -> str:
    return f"c{container_id}"


def _apps(app_ids: Collection[int] | None) -> list[App]:
    """Apps the routers may hold: those with a release that ran or a container up, which are routed, and
    those that were routed before (they have a slot), whose hostnames and servers must go. An app never
    routed is unknown to the routers and gets the plain 404 like any unknown hostname."""
    live = Container.objects.filter(app=OuterRef("pk"), state__in=Container.LIVE)
    apps = App.objects.annotate(has_live=Exists(live)).filter(
        Q(current_release__isnull=False) | Q(has_live=True) | Q(route_slot__isnull=False)
    )
    if app_ids is not None:
        apps = apps.filter(pk__in=app_ids)
    return list(apps.select_related("organization").only("name", "https_only", "current_release", "organization__slug"))


def route_table(app_ids: Collection[int] | None = None) -> list[AppRoute]:
    """The routes of the given apps (all apps when None), with slots taken for those that had none.

    A replica is served while it runs, passed its health check and is not being stopped: it joins
    once healthy and leaves when Berth begins to stop it (`Container.State.STOPPING`). While an app has
    canary replicas serving, the weights give them the canary's share of its requests (`_weighed`)."""
    apps = _apps(app_ids)
    if not apps:
        return []
    ids = [app.pk for app in apps]
    slots = take_slots(ids)
    domains: dict[int, list[str]] = defaultdict(list)
    for app_id, hostname in Domain.objects.filter(app_id__in=ids).values_list("app_id", "hostname"):
        domains[app_id].append(hostname)
    upstreams = _upstreams(ids)
    routes = []
    for app in apps:
        routed = app.current_release_id is not None or app.has_live  # type: ignore[attr-defined]
        hostnames = (default_hostname(app.name, app.organization.slug), *sorted(domains[app.pk])) if routed else ()
        routes.append(
            AppRoute(
                app_id=app.pk,
                backend=backend_name(slots[app.pk]),
                hostnames=hostnames,
                upstreams=tuple(sorted(upstreams[app.pk], key=lambda u: u.name)),
                https_only=app.https_only,
            )
        )
    return routes


def _upstreams(app_ids: list[int]) -> dict[int, list[Upstream]]:
    serving = Container.objects.filter(
        app_id__in=app_ids,
        state=Container.State.RUNNING,
        health=Container.Health.HEALTHY,
        published_port__isnull=False,
        host__status__in=DockerHost.ANSWERING,
    ).values_list("pk", "app_id", "release_id", "process_type", "canary", "host__address", "published_port")
    rows = list(serving)
    http_types = _http_process_types({row[2] for row in rows})
    found: dict[int, list[tuple[Upstream, bool]]] = defaultdict(list)
    for pk, app_id, release_id, process_type, canary, address, port in rows:
        if process_type in http_types.get(release_id, ()):
            found[app_id].append((Upstream(upstream_name(pk), address, port or 0), canary))
    weights = _canary_weights([app_id for app_id, upstreams in found.items() if any(c for _, c in upstreams)])
    # Every app asked for has an entry: one with no serving replica has none.
    return defaultdict(list, {app_id: _weighed(upstreams, weights.get(app_id)) for app_id, upstreams in found.items()})


def _canary_weights(app_ids: list[int]) -> dict[int, int]:
    """The weight of each app's newest canary, for apps with canary replicas serving. That canary may have
    ended: its replicas keep its share until they leave the routes (an abort stops them, a promotion
    makes them the release's)."""
    if not app_ids:
        return {}
    newest = Canary.objects.filter(app_id__in=app_ids).order_by("app_id", "-id").distinct("app_id")
    return dict(newest.values_list("app_id", "weight"))


def _weighed(upstreams: list[tuple[Upstream, bool]], percent: int | None) -> list[Upstream]:
    """An app's servers, with weights that give its canary replicas `percent` % of the requests
    (berth.routing.weights), or all the same weight when it has no canary serving, or only canaries."""
    new = sum(1 for _, canary in upstreams if canary)
    old = len(upstreams) - new
    if percent is None or not new or not old:
        return [upstream for upstream, _ in upstreams]
    mine, theirs = split_weights(percent, old, new)
    return [replace(upstream, weight=theirs if canary else mine) for upstream, canary in upstreams]


def _http_process_types(release_ids: set[int]) -> dict[int, set[str]]:
    releases = Release.objects.filter(pk__in=release_ids).only("process_types")
    return {r.pk: {name for name, process in r.processes.items() if process.http} for r in releases}


def take_slots(app_ids: list[int]) -> dict[int, int]:
    """Each app's slot number, taking the lowest free one for apps that have none. Two workers may take
    at once: a taken number or app makes the insert do nothing, and the loop reads again."""
    slots = dict(RouteSlot.objects.filter(app_id__in=app_ids).values_list("app_id", "number"))
    for app_id in app_ids:
        while app_id not in slots:
            _insert_lowest_slot(app_id)
            slots.update(RouteSlot.objects.filter(app_id=app_id).values_list("app_id", "number"))
    return slots


def _insert_lowest_slot(app_id: int) -> None:
    table = RouteSlot._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (app_id, number)
                SELECT %s, n FROM generate_series(0, (SELECT count(*) FROM {table})) AS n
                WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE number = n) ORDER BY n LIMIT 1
                ON CONFLICT DO NOTHING""",  # noqa: S608 (the table's name is the model's)
            [app_id],
        )


# What people see: an app's addresses, for the API and the dashboard.


@dataclass(frozen=True)
class PublicPorts:
    """The ports an app's URLs name. Every router serves every route, so any router's ports would do; the
    first active one by name keeps the URLs the same on every page. 80 and 443 while no router is active."""

    http: int = 80
    https: int = 443


def public_ports() -> PublicPorts:
    ports = (
        Router.objects.filter(state=Router.State.ACTIVE).order_by("name").values_list("http_port", "https_port").first()
    )
    return PublicPorts(*ports) if ports else PublicPorts()


def hostname_urls(hostname: str, ports: PublicPorts) -> dict[str, str]:
    """{"http": …, "https": …}: where a hostname of an app answers on the routers."""
    return {
        "http": hostname_url(hostname, port=ports.http),
        "https": hostname_url(hostname, port=ports.https, scheme="https"),
    }


def app_urls(app: App, ports: PublicPorts) -> dict[str, str]:
    """The app's URLs at the hostname Berth gives it."""
    return hostname_urls(default_hostname(app.name, app.organization.slug), ports)


@dataclass(frozen=True)
class Address:
    hostname: str
    urls: dict[str, str]
    # The hostname Berth gives the app, rather than one its tenant added.
    default: bool = False


@dataclass(frozen=True)
class AppAddresses:
    """Where an app answers: its own hostname first, then the first of the hostnames its tenant added."""

    addresses: list[Address]
    # Added hostnames beyond those listed.
    more: int


def app_addresses(app: App, *, domains: int) -> AppAddresses:
    """The app's hostname and the first `domains` of those added, with their URLs; one query, whatever
    the app and the routers hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT
                  (SELECT ARRAY[http_port, https_port] FROM {Router._meta.db_table}
                   WHERE state = %s ORDER BY name LIMIT 1),
                  ARRAY(SELECT hostname FROM {Domain._meta.db_table} WHERE app_id = %s ORDER BY hostname LIMIT %s),
                  (SELECT count(*) FROM {Domain._meta.db_table} WHERE app_id = %s)""",  # noqa: S608 (models' tables)
            [Router.State.ACTIVE, app.pk, domains, app.pk],
        )
        router_ports, hostnames, count = cursor.fetchone()
    ports = PublicPorts(*router_ports) if router_ports else PublicPorts()
    own = Address(default_hostname(app.name, app.organization.slug), app_urls(app, ports), default=True)
    added = [Address(hostname, hostname_urls(hostname, ports)) for hostname in hostnames]
    return AppAddresses([own, *added], more=count - len(hostnames))
