"""worker.routing.plan: the runtime API commands that bring a router from what it serves to the route table.
Pure: the router's state is written out as the push reads it (`Live`), no router runs."""

from berth.routing.config import SERVER_OPTIONS
from berth.routing.selectors import AppRoute, Upstream
from worker.haproxy import FORCED_DRAIN, FORCED_MAINT, LiveServer
from worker.routing import Live, plan

HOSTS, HTTPS = "/r/hosts.map", "/r/https.map"
# The router's backends: Berth's slots and the one for unknown hostnames.
BACKENDS = {"unknown", "b00000", "b00001", "b00002"}


def route(backend="b00000", *upstreams: Upstream, hostnames=("hello.shop.localhost",), https_only=False) -> AppRoute:
    return AppRoute(app_id=1, backend=backend, hostnames=hostnames, upstreams=upstreams, https_only=https_only)


def up(name: str, weight: int = 100) -> Upstream:
    return Upstream(name, "10.250.12.2", 32000 + int(name[1:]), weight)


def server(backend: str, name: str, *, weight: int = 100, admin_state: int = 0) -> LiveServer:
    return LiveServer(backend, name, "10.250.12.2", 32000 + int(name[1:]), weight, admin_state)


def live(*servers: LiveServer, hosts=None, https=None, sessions=None, backends=BACKENDS) -> Live:
    by_backend: dict = {}
    for s in servers:
        by_backend.setdefault(s.backend, {})[s.name] = s
    return Live(
        hosts=hosts or {}, https=https or {}, servers=by_backend, sessions=sessions or {}, backends=set(backends)
    )


def commands(wanted, state: Live, *, everything=False) -> list[str]:
    return plan(wanted, state, hosts_map=HOSTS, https_map=HTTPS, everything=everything)


def test_a_router_in_step_gets_no_command():
    state = live(server("b00000", "c1"), server("b00000", "c2"), hosts={"hello.shop.localhost": "b00000"})
    assert commands([route("b00000", up("c1"), up("c2"))], state) == []
    assert commands([route("b00000", up("c1"), up("c2"))], state, everything=True) == []


def test_a_new_app_gets_its_servers_then_its_hostname():
    assert commands([route("b00000", up("c1"))], live()) == [
        f"add server b00000/c1 10.250.12.2:32001 weight 100 {SERVER_OPTIONS}",
        "enable health b00000/c1",
        "enable server b00000/c1",
        f"add map {HOSTS} hello.shop.localhost b00000",
    ]


def test_replicas_join_before_the_ones_they_replace_leave():
    state = live(server("b00000", "c1"), hosts={"hello.shop.localhost": "b00000"})
    planned = commands([route("b00000", up("c2"))], state)
    assert planned == [
        f"add server b00000/c2 10.250.12.2:32002 weight 100 {SERVER_OPTIONS}",
        "enable health b00000/c2",
        "enable server b00000/c2",
        "set server b00000/c1 state maint",
        "del server b00000/c1",
    ]


def test_a_leaving_server_with_requests_in_flight_is_drained_not_deleted():
    state = live(server("b00000", "c1"), server("b00000", "c2"), sessions={("b00000", "c1"): 2})
    assert commands([route("b00000", up("c2"), hostnames=())], state) == ["set server b00000/c1 state drain"]


def test_a_draining_server_still_busy_is_left_alone_and_deleted_once_idle():
    draining = server("b00000", "c1", admin_state=FORCED_DRAIN)
    busy = live(draining, server("b00000", "c2"), sessions={("b00000", "c1"): 1, ("b00000", "c2"): 5})
    assert commands([route("b00000", up("c2"), hostnames=())], busy) == []
    idle = live(draining, server("b00000", "c2"), sessions={("b00000", "c1"): 0})
    assert commands([route("b00000", up("c2"), hostnames=())], idle) == [
        "set server b00000/c1 state maint",
        "del server b00000/c1",
    ]


def test_a_draining_or_maintained_server_that_is_wanted_again_is_made_ready():
    for admin_state in (FORCED_DRAIN, FORCED_MAINT):
        state = live(server("b00000", "c1", admin_state=admin_state))
        assert commands([route("b00000", up("c1"), hostnames=())], state) == ["set server b00000/c1 state ready"]


def test_a_changed_weight_is_set_in_place():
    state = live(server("b00000", "c1"), server("b00000", "c2", weight=100))
    planned = commands([route("b00000", up("c1", 90), up("c2", 10), hostnames=())], state)
    assert planned == ["set server b00000/c1 weight 90", "set server b00000/c2 weight 10"]


def test_hostnames_are_added_moved_with_set_and_deleted():
    state = live(
        hosts={
            "kept.example.com": "b00000",
            "moved.example.com": "b00001",  # another app's until now
            "gone.example.com": "b00000",  # a domain the tenant removed
        }
    )
    wanted = [route("b00000", hostnames=("kept.example.com", "moved.example.com", "new.example.com"))]
    assert commands(wanted, state) == [
        f"del map {HOSTS} gone.example.com",
        f"set map {HOSTS} moved.example.com b00000",
        f"add map {HOSTS} new.example.com b00000",
    ]


def test_https_only_adds_and_removes_the_apps_hostnames_in_the_https_map():
    hosts = {"hello.shop.localhost": "b00000", "www.example.com": "b00000"}
    names = ("hello.shop.localhost", "www.example.com")
    secured = commands([route("b00000", hostnames=names, https_only=True)], live(hosts=hosts))
    assert secured == [f"add map {HTTPS} hello.shop.localhost 1", f"add map {HTTPS} www.example.com 1"]
    state = live(hosts=hosts, https=dict.fromkeys(names, "1"))
    assert commands([route("b00000", hostnames=names, https_only=True)], state) == []
    assert commands([route("b00000", hostnames=names)], state) == [
        f"del map {HTTPS} hello.shop.localhost",
        f"del map {HTTPS} www.example.com",
    ]


def test_a_removed_https_only_domain_leaves_both_maps():
    state = live(hosts={"www.example.com": "b00000"}, https={"www.example.com": "1"})
    assert commands([route("b00000", hostnames=(), https_only=True)], state) == [
        f"del map {HOSTS} www.example.com",
        f"del map {HTTPS} www.example.com",
    ]


def other_apps_state() -> Live:
    """A router that serves hello (b00000) and another app (b00001), which a push for hello is not about."""
    return live(
        server("b00000", "c1"),
        server("b00001", "c7"),
        hosts={"hello.shop.localhost": "b00000", "other.shop.localhost": "b00001"},
        https={"other.shop.localhost": "1"},
    )


def test_a_push_for_some_apps_touches_only_their_backends_and_hostnames():
    wanted = [route("b00000", up("c2"))]
    planned = commands(wanted, other_apps_state())
    assert planned == [
        f"add server b00000/c2 10.250.12.2:32002 weight 100 {SERVER_OPTIONS}",
        "enable health b00000/c2",
        "enable server b00000/c2",
        "set server b00000/c1 state maint",
        "del server b00000/c1",
    ]
    assert not any("b00001" in c or "other.shop.localhost" in c for c in planned)


def test_a_whole_pass_removes_what_is_not_in_the_table():
    planned = commands([route("b00000", up("c1"))], other_apps_state(), everything=True)
    assert planned == [
        f"del map {HOSTS} other.shop.localhost",
        f"del map {HTTPS} other.shop.localhost",
        "set server b00001/c7 state maint",
        "del server b00001/c7",
    ]


def test_a_slot_taken_by_a_new_app_loses_the_old_apps_hostnames_first_and_gets_its_own_last():
    """A deleted app's slot is the lowest free one, so the next app routed takes it, while a router that
    missed the deletion still sends the old app's hostname to the old app's server there."""
    state = live(server("b00000", "c1"), hosts={"deleted.shop.localhost": "b00000"})
    planned = commands([route("b00000", up("c2"), hostnames=("new.other.localhost",))], state)
    assert planned[0] == f"del map {HOSTS} deleted.shop.localhost"
    assert planned[1].startswith("add server b00000/c2 ")
    assert planned.index("del server b00000/c1") < planned.index(f"add map {HOSTS} new.other.localhost b00000")
    assert planned[-1] == f"add map {HOSTS} new.other.localhost b00000"


def test_apps_beyond_the_routers_capacity_are_skipped():
    beyond = route("b00009", up("c5"), hostnames=("far.shop.localhost",), https_only=True)
    assert commands([beyond], live()) == []
    assert commands([beyond], live(), everything=True) == []
    planned = commands([route("b00000", up("c1")), beyond], live())
    assert not any("b00009" in c or "far.shop.localhost" in c for c in planned)
    assert len(planned) == 4  # hello's server (3 commands) and hostname
