"""Keeping the routers in step with the route table (docs/routing.md).

Level-triggered: a push reads the route table from PostgreSQL, reads what the router serves now, and
sends the difference through HAProxy's runtime API. It runs after every change that alters the table
(a replica healthy or stopping, a crash seen, a domain added) for the apps concerned, and every
BERTH_ROUTE_SYNC_SECONDS for every app on every router, which repairs any drift: a router that
restarted empty is full again after one pass. A router that does not answer never holds anything
up: it is marked down, skipped by the pushes after a change, and caught up by the periodic pass.
"""

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from berth.deployments.models import Deployment
from berth.fleet.models import Container, Router
from berth.logs import store as logs
from berth.routing.config import SERVER_OPTIONS
from berth.routing.selectors import AppRoute, route_table, upstream_name

from . import locks
from .haproxy import (
    LiveServer,
    RouterRefused,
    RouterUnreachable,
    RuntimeAPI,
    check_answers,
    parse_backends,
    parse_map,
    parse_map_paths,
    parse_servers,
    parse_sessions,
    servers_command,
    sessions_command,
)

logger = logging.getLogger(__name__)

# How often a replica leaving the routes is looked at until no router has a request in flight to it.
DRAIN_POLL_S = 0.05


@dataclass
class Outcome:
    """What one push did on one router."""

    router: Router
    commands: int = 0
    # Servers left out of the table that the router still holds: drained while requests are in flight to them.
    draining: set[str] = field(default_factory=set)
    error: str = ""


@dataclass(frozen=True)
class Live:
    """What a router serves now, as far as a push looks."""

    hosts: dict[str, str]
    https: dict[str, str]
    servers: dict[str, dict[str, LiveServer]]
    sessions: dict[tuple[str, str], int]
    backends: set[str]


def plan(wanted: list[AppRoute], live: Live, *, hosts_map: str, https_map: str, everything: bool) -> list[str]:
    """The runtime API commands that make the router serve `wanted`. With `everything`, `wanted` is the
    whole table and whatever else the router serves goes; otherwise only what belongs to the backends
    of `wanted` (their servers, and the hostnames that point at them) is touched.

    In this order: hostnames that go, replicas that join, replicas that leave, hostnames that come. A
    replaced replica is drained only once its successor serves, and one that leaves is drained while it
    has requests in flight and deleted once idle. A backend may be a slot freed by a deleted app and
    taken by a new one: the old app's hostnames leave it before the new app's replicas join, and the new
    app's hostnames point at it only once the old replicas left, so neither app's clients reach the other."""
    joins: list[str] = []
    leaves: list[str] = []
    # Apps beyond the router's capacity have no backend there: reported by the pass, not an error per command.
    placed = [route for route in wanted if route.backend in live.backends]
    backends = {route.backend for route in wanted}
    hostnames = {name: route.backend for route in placed for name in route.hostnames}
    secure = {name for route in placed if route.https_only for name in route.hostnames}
    for route in placed:
        present = live.servers.get(route.backend, {})
        for upstream in route.upstreams:
            where = f"{route.backend}/{upstream.name}"
            server = present.get(upstream.name)
            if server is None:
                joins += [
                    f"add server {where} {upstream.address}:{upstream.port} weight {upstream.weight} {SERVER_OPTIONS}",
                    f"enable health {where}",
                    f"enable server {where}",
                ]
                continue
            if server.draining:
                joins.append(f"set server {where} state ready")
            if server.weight != upstream.weight:
                joins.append(f"set server {where} weight {upstream.weight}")
    wanted_servers = {(route.backend, u.name) for route in wanted for u in route.upstreams}
    for backend, servers in live.servers.items():
        if not everything and backend not in backends:
            continue
        for server in servers.values():
            if (backend, server.name) in wanted_servers:
                continue
            where = f"{backend}/{server.name}"
            if live.sessions.get((backend, server.name), 0) == 0:
                leaves += [f"set server {where} state maint", f"del server {where}"]
            elif not server.draining:
                leaves.append(f"set server {where} state drain")
    gone = [
        f"del map {hosts_map} {name}"
        for name, backend in live.hosts.items()
        if name not in hostnames and (everything or backend in backends)
    ]
    gone += [
        f"del map {https_map} {name}"
        for name in live.https
        if name not in secure and (everything or hostnames.get(name, live.hosts.get(name)) in backends)
    ]
    come = [
        f"{'set' if name in live.hosts else 'add'} map {hosts_map} {name} {backend}"
        for name, backend in hostnames.items()
        if live.hosts.get(name) != backend
    ]
    come += [f"add map {https_map} {name} 1" for name in sorted(secure - set(live.https))]
    return gone + joins + leaves + come


def _read(api: RuntimeAPI, backends: Collection[str] | None) -> tuple[tuple[str, str], Live]:
    """The router's maps and what it serves, for these backends (all when None), in two exchanges."""
    listing, names = api.run(["show map", "show backend"])
    hosts_map, https_map = parse_map_paths(listing)
    all_backends = set(parse_backends(names))
    scope: list[str | None] = [None] if backends is None else [b for b in backends if b in all_backends]
    commands = [f"show map {hosts_map}", f"show map {https_map}"]
    for backend in scope:
        commands += [servers_command(backend), sessions_command(backend)]
    answers = api.run(commands)
    servers: dict[str, dict[str, LiveServer]] = {}
    sessions: dict[tuple[str, str], int] = {}
    for servers_answer, sessions_answer in zip(answers[2::2], answers[3::2], strict=True):
        for server in parse_servers(servers_answer):
            servers.setdefault(server.backend, {})[server.name] = server
        sessions.update(parse_sessions(sessions_answer))
    live = Live(
        hosts=parse_map(answers[0]),
        https=parse_map(answers[1]),
        servers=servers,
        sessions=sessions,
        backends=all_backends,
    )
    return (hosts_map, https_map), live


def push_to(router: Router, app_ids: Collection[int] | None, *, wait_s: float = 30) -> Outcome:
    """Bring one router in step for these apps (all when None). Holds the router's lock, so the table is
    read after any other push to it finished, and two pushes never interleave on one router."""
    outcome = Outcome(router)
    api = RuntimeAPI(router.admin_url)
    with locks.advisory_lock(locks.ROUTER, router.pk, wait_s=wait_s):
        wanted = route_table(app_ids)
        try:
            paths, live = _read(api, None if app_ids is None else [r.backend for r in wanted])
            commands = plan(wanted, live, hosts_map=paths[0], https_map=paths[1], everything=app_ids is None)
            answers = api.run(commands) if commands else []
        except (RouterUnreachable, RouterRefused) as error:
            outcome.error = str(error)
            return outcome
    errors = check_answers(commands, answers)
    outcome.commands = len(commands)
    outcome.draining = _not_deleted(wanted, live, commands, answers)
    if errors:
        logger.warning("router %s refused %d commands, first: %s", router.name, len(errors), errors[0])
    if app_ids is None:
        over = [route for route in wanted if route.backend not in live.backends]
        _record(router, routes=len(wanted) - len(over), capacity=len(live.backends) - 1, over=len(over))
    elif router.status != Router.Status.UP:
        _record(router)
    return outcome


def _not_deleted(wanted: list[AppRoute], live: Live, commands: list[str], answers: list[str]) -> set[str]:
    """The servers of `wanted`'s backends that leave the routes and that the router still holds. A request
    can reach a server between the moment its sessions were read and the moment it is put in maintenance;
    HAProxy then refuses to delete it until that request is done. So a server has left only once its
    `del server` was accepted, never merely because it looked idle."""
    deleted = {
        command.split()[2]
        for command, answer in zip(commands, answers, strict=True)
        if command.startswith("del server ") and answer == "Server deleted."
    }
    leaving = set()
    for route in wanted:
        staying = {upstream.name for upstream in route.upstreams}
        for name in live.servers.get(route.backend, {}):
            if name not in staying and f"{route.backend}/{name}" not in deleted:
                leaving.add(name)
    return leaving


def _record(router: Router, *, routes: int | None = None, capacity: int | None = None, over: int = 0) -> None:
    """A pass that worked: the router is up, and (after a whole pass) what it holds."""
    changes: dict = {"status": Router.Status.UP, "last_synced_at": timezone.now(), "last_error": ""}
    if routes is not None:
        changes.update(routes=routes, capacity=capacity)
    if over:
        changes["last_error"] = f"{over} apps have slots beyond this router's {capacity} backends: set it up with more."
    Router.objects.filter(pk=router.pk).update(**changes)
    router.status = Router.Status.UP


def _down(router: Router, error: str) -> None:
    Router.objects.filter(pk=router.pk).update(status=Router.Status.DOWN, last_error=error[:2000])
    router.status = Router.Status.DOWN


def push(app_ids: Iterable[int], deployment: Deployment | None = None) -> list[Outcome]:
    """After a change: push these apps' routes to every active router that is not down. Never raises."""
    ids = sorted(set(app_ids))
    if not ids:
        return []
    outcomes = []
    routers = Router.objects.filter(state=Router.State.ACTIVE).exclude(status=Router.Status.DOWN)
    for router in routers:
        try:
            outcome = push_to(router, ids)
        except locks.Busy:
            # Another push held the router for 30 s: the periodic pass brings this change.
            logger.warning("router %s stayed busy; apps %s wait for the next pass", router.name, ids)
            continue
        except Exception as error:  # a push must never fail the deployment or pass that made the change
            logger.exception("push to router %s failed", router.name)
            outcome = Outcome(router, error=f"{type(error).__name__}: {error}")
        if outcome.error:
            _down(router, outcome.error)
            logger.warning("router %s is down: %s", router.name, outcome.error)
            _pending(deployment, router, outcome.error)
            for app_id in ids:
                logs.say(app_id, "router", f"routing is pending on router {router.name}; it catches up when it answers")
        outcomes.append(outcome)
    return outcomes


def _pending(deployment: Deployment | None, router: Router, error: str) -> None:
    from .runtime import step  # runtime pushes through this module

    step(deployment, f"Routing is pending on router {router.name} ({error}); it catches up when the router answers.")


def sync_routers() -> None:
    """The periodic pass: every active router, down ones included, gets the whole table."""
    for router in Router.objects.filter(state=Router.State.ACTIVE):
        try:
            # Another worker's pass, or a long run of pushes: this router is looked at again next pass.
            outcome = push_to(router, None, wait_s=1)
        except locks.Busy:
            continue
        if outcome.error:
            if router.status != Router.Status.DOWN or outcome.error != router.last_error:
                _down(router, outcome.error)
        elif outcome.commands:
            logger.info("router %s: %d changes", router.name, outcome.commands)


def join(container: Container, deployment: Deployment | None = None) -> None:
    """A container just passed its health check: it serves from now on, if its process type takes HTTP."""
    push([container.app_id], deployment)
    _say(container, "joins the routes")


def leave(container: Container, drain_timeout_s: float, deployment: Deployment | None = None) -> None:
    """A container Berth is about to stop (its row already `stopping`) leaves the routes, and this returns
    once every router that answers deleted its server (HAProxy deletes one only when no request is in
    flight to it), or after the app's drain timeout."""
    _say(container, "leaves the routes")
    name = upstream_name(container.pk)
    deadline = time.monotonic() + drain_timeout_s
    while True:
        busy = [o.router.name for o in push([container.app_id], deployment) if name in o.draining]
        if not busy:
            return
        if time.monotonic() >= deadline:
            from .runtime import step

            step(
                deployment,
                f"{container.name} still had requests in flight on {', '.join(busy)} after the app's drain "
                f"timeout ({drain_timeout_s:g} s); stopping it anyway.",
                container=container,
            )
            return
        time.sleep(DRAIN_POLL_S)


def _say(container: Container, what: str) -> None:
    """`berth[router]: web.1 (…) joins the routes`; nothing for a process type that takes no HTTP."""
    if not container.published_port:
        return
    text = f"{container.process_type}.{container.index} ({container.name}) {what}"
    logs.say(container.app_id, "router", text, process_type=container.process_type)
