"""What a real router serves, read through its runtime API, against what the route table says it should."""

from berth.routing.selectors import route_table
from worker.haproxy import RuntimeAPI


def served(router) -> dict:
    """The router's servers (backend, name, address, port, weight, admin state) and its two maps."""
    api = RuntimeAPI(router.files.admin_url)
    hosts_map, https_map = api.map_paths()
    return {
        "servers": {(s.backend, s.name, s.address, s.port, s.weight, s.admin_state) for s in api.servers()},
        "hosts": api.map_entries(hosts_map),
        "https": set(api.map_entries(https_map)),
    }


def wanted() -> dict:
    """The same, as the route table has it: every server ready (admin state 0), nothing else."""
    table = route_table()
    return {
        "servers": {(r.backend, u.name, u.address, u.port, u.weight, 0) for r in table for u in r.upstreams},
        "hosts": {name: r.backend for r in table for name in r.hostnames},
        "https": {name for r in table if r.https_only for name in r.hostnames},
    }


def assert_router_matches_table(router) -> None:
    now, table = served(router), wanted()
    assert now == table, f"router: {now}\ntable:  {table}"
