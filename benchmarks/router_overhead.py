"""Router overhead: latency and throughput through Berth's router against straight to the replica, same run.

Berth's issue: "router overhead (p50/p99 latency and throughput through the router vs straight to the
replica, same run; target ≤ 1 ms added at p50 and ≥ 80% of the direct throughput on this machine,
measured with a real load tool such as `wrk` or `oha`)."

One replica of berth-test/web:v1 (busybox httpd) deployed by Berth's deploy code on the first test-bed host,
and a router (HAProxy + Caddy, `_router.BenchRouter`) whose route to it was installed by the worker's own
push (`worker.routing.join` after the health check). `wrk` (Debian's) asks, in the same run and
interleaved (A B C, then C B A):

- direct: `http://<host address>:<published port>/`, the replica itself;
- router: `http://127.0.0.1:<router http port>/` with `Host: <app>.<org>.localhost`, through HAProxy;
- https: `https://<app>.<org>.localhost:<router https port>/` through Caddy (TLS) then HAProxy:
  informative, not a target. wrk resolves the URL's name itself (for SNI too), and glibc does not resolve
  `*.localhost`, so wrk runs in a mount namespace of its own where /etc/hosts names it 127.0.0.1.

each at a fixed moderate rate (2 threads, 4 connections, each waiting 20 ms between requests: ~190
requests/s; the latency target's figure) and unbounded (2 threads, 8 connections, as fast as they go: the
throughput target's figure). The path is `/` (a static file): the proxy is measured, not the fork of
busybox's CGI; one more fixed-rate pair asks /cgi-bin/request, what an app that computes its answer pays.

busybox sends `Connection: close`, so every request to the replica is a new TCP connection, wrk's own for
direct and HAProxy's through the router (wrk keeps its connections to HAProxy open). Each closed connection
leaves a TIME_WAIT socket in this machine's network namespace for 60 s, and with the default
`net.ipv4.tcp_tw_reuse = 2` (reuse on loopback only) the ~28k ephemeral ports to the replica's address run
out after a few runs, which then measure the port search, not the proxy (both figures halve). So the parent
sets `net.ipv4.tcp_tw_reuse = 1` for the run and puts the machine's value back after
(`BERTH_BENCH_TW_REUSE=keep` leaves it alone), and each run records the TIME_WAIT count at its start.
"""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
from _router import SIZE, WEB

NAME = "router_overhead"
ORG = "bench-router"
DATABASE = "berth_bench_router"
IMAGE = "berth-test/web:v1"
STATIC_PATH = "/"  # index.html: "web v1"
CGI_PATH = "/cgi-bin/request"
ROUNDS = 2
FIXED = {"threads": 2, "connections": 4, "delay_ms": 20, "seconds": 10}
UNBOUNDED = {"threads": 2, "connections": 8, "delay_ms": 0, "seconds": 6}
WARM_UP = {"threads": 2, "connections": 4, "delay_ms": 0, "seconds": 2}
PAUSE_S = 1.0
TARGET_ADDED_P50_MS = 1.0
TARGET_THROUGHPUT_SHARE = 0.80
TW_REUSE = Path("/proc/sys/net/ipv4/tcp_tw_reuse")

# wrk's own report, as one JSON line: its percentiles are exact (µs), unlike the rounded text table.
WRK_SCRIPT = """\
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay() return delay_ms end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def run(*, rounds: int = ROUNDS) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=420)
    runner.hosts = runner.hosts[:1]
    before = TW_REUSE.read_text().strip()
    wanted = os.environ.get("BERTH_BENCH_TW_REUSE", "1")
    changed = wanted != "keep" and wanted != before
    try:
        if changed:
            TW_REUSE.write_text(wanted)
        figures = runner.run([str(rounds)], exclusive_hosts=True)
    finally:
        if changed:
            TW_REUSE.write_text(before)
    return {"tcp_tw_reuse": {"machine": before, "during_run": wanted if changed else before}, **figures}


# --- the measuring child ------------------------------------------------------------------------


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT in this network namespace (IPv4 and IPv6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            count += sum(1 for row in rows if row.split(None, 4)[3] == "06")
    return count


class Wrk:
    def __init__(self, hostname: str):
        self.script = bench.OUT / f"{NAME}-wrk.lua"
        self.script.write_text(WRK_SCRIPT)
        # For the https series only: wrk resolves the URL's name (and sends it as SNI) itself.
        self.hosts_file = bench.OUT / f"{NAME}-hosts"
        self.hosts_file.write_text(f"127.0.0.1 localhost\n127.0.0.1 {hostname}\n")

    def run(self, url: str, shape: dict, *, host_header: str | None = None, router=None) -> dict:
        command = [
            *("wrk", "-t", str(shape["threads"]), "-c", str(shape["connections"]), "-d", f"{shape['seconds']}s"),
            *("--timeout", "5s", "-s", str(self.script)),
            *(("-H", f"Host: {host_header}") if host_header else ()),
            url,
        ]
        if url.startswith("https://"):
            # A private mount namespace: the bind mount is seen by this wrk only, and goes with it.
            wrap = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"']
            command = [*wrap, str(self.hosts_file), *command]
        env = {**os.environ, "BENCH_DELAY_MS": str(shape["delay_ms"])}
        at = {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "time_wait_sockets": time_wait_sockets()}
        cpu_before = router.cpu_s() if router else {}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=shape["seconds"] + 30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = [line for line in done.stdout.splitlines() if line.startswith("WRK ")]
        if done.returncode or not lines:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
        raw = json.loads(lines[-1][4:])
        seconds = raw["duration_us"] / 1e6
        errors = {k.removeprefix("errors_"): v for k, v in raw.items() if k.startswith("errors_") and v}
        result = {
            "requests": raw["requests"],
            "seconds": round(seconds, 2),
            "rps": round(raw["requests"] / seconds, 1),
            "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "max_ms": raw["max_us"] / 1000,
            "mean_ms": round(raw["mean_us"] / 1000, 3),
            "errors": errors,
            "wrk_cpu_ms_per_request": round(
                1000 * (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / raw["requests"], 4
            ),
            "at_start": at,
        }
        if router:
            cpu_after = router.cpu_s()
            result["router_cpu_ms_per_request"] = {
                name: round(1000 * (cpu_after[name] - cpu_before[name]) / raw["requests"], 4) for name in cpu_after
            }
        return result


def measure(rounds: int) -> dict:
    bench.django_setup()
    from _router import BenchRouter

    from berth.applications.services import app_create
    from berth.deployments.services import release_create
    from berth.fleet.models import Container
    from berth.routing.hostnames import default_hostname
    from berth.routing.selectors import upstream_name
    from worker.deploy import run_app_deployments

    hosts = bench.bench_hosts()[:1]
    [host_row] = bench.register_fleet(hosts, memory_mb=4096)
    bench.size_create(*SIZE)
    owner, organization = bench.bench_tenant(ORG)
    router = BenchRouter(NAME).start()
    try:
        router.register()
        app = app_create(actor=owner, organization=organization, name="web")
        release_create(actor=owner, app=app, image=IMAGE, process_types=WEB)
        run_app_deployments(app.pk)  # the health check passes, then worker.routing.join pushes the route
        container = Container.objects.get(app=app, state=Container.State.RUNNING, health=Container.Health.HEALTHY)
        hostname = default_hostname(app.name, organization.slug)
        # The route as the worker's push installed it: the replica's address, nothing written by hand.
        installed = [s for s in router.servers() if s.name == upstream_name(container.pk)]
        if [(s.address, s.port) for s in installed] != [(host_row.address, container.published_port)]:
            raise RuntimeError(f"the router does not serve the replica as Berth installed it: {installed}")
        files = router.files
        targets = {
            "direct": (f"http://{host_row.address}:{container.published_port}", None),
            "router": (f"http://127.0.0.1:{files.http_port}", hostname),
            "https": (f"https://{hostname}:{files.https_port}", None),
        }
        check_answers(targets, files.caddy_ca_root)
        wrk = Wrk(hostname)
        for base, host_header in targets.values():  # and Caddy gets its certificate on demand
            wrk.run(base + STATIC_PATH, WARM_UP, host_header=host_header)
        series: dict[str, list[dict]] = {}
        orders = [list(targets), list(reversed(targets))]
        for shape_name, shape, path in (("fixed", FIXED, STATIC_PATH), ("unbounded", UNBOUNDED, STATIC_PATH)):
            for round_number in range(rounds):
                for name in orders[round_number % 2]:
                    base, host_header = targets[name]
                    time.sleep(PAUSE_S)
                    result = wrk.run(base + path, shape, host_header=host_header, router=router)
                    series.setdefault(f"{shape_name}_{name}", []).append(result)
        for name in ("direct", "router"):
            base, host_header = targets[name]
            time.sleep(PAUSE_S)
            result = wrk.run(base + CGI_PATH, FIXED, host_header=host_header, router=router)
            series.setdefault(f"fixed_cgi_{name}", []).append(result)
        router_state = {s.name: (s.address, s.port) for s in router.servers()}
    finally:
        router.stop()
    return {
        "replica": {"host": host_row.name, "address": host_row.address, "port": container.published_port},
        "router_servers_at_end": router_state,
        "shapes": {"fixed": FIXED, "unbounded": UNBOUNDED},
        "series": series,
        "summary": summarize(series),
    }


def check_answers(targets: dict, ca_root: Path) -> None:
    """Every target answers the static page and the CGI before anything is measured; HTTPS with a certificate
    from the router's CA for the app's name (curl resolves `*.localhost` itself)."""
    for name, (base, host_header) in targets.items():
        for path, wanted in ((STATIC_PATH, "web v1"), (CGI_PATH, "SERVED_BY=")):
            command = ["curl", "-sS", "--max-time", "10", "--cacert", str(ca_root), base + path]
            if host_header:
                command += ["-H", f"Host: {host_header}"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode or wanted not in done.stdout:
                raise RuntimeError(f"{name} {path}: curl {done.returncode} {done.stdout[:200]} {done.stderr[:300]}")


def summarize(series: dict[str, list[dict]]) -> dict:
    """The targets' figures: the router's p50 at the fixed rate minus the replica's, and its requests per second
    unbounded as a share of the replica's, per round (A B C, then C B A). A target is met when every round meets it."""

    def difference(through: str, direct: str, key: str = "p50_ms") -> list[float]:
        pairs = zip(series.get(through, []), series.get(direct, []), strict=True)
        return [round(a[key] - b[key], 3) for a, b in pairs]

    def share(through: str) -> list[float]:
        pairs = zip(series.get(through, []), series.get("unbounded_direct", []), strict=True)
        return [round(a["rps"] / b["rps"], 3) for a, b in pairs]

    added_p50 = difference("fixed_router", "fixed_direct")
    throughput = share("unbounded_router")
    # busybox's CGI answers end with the connection (no length, no chunks), which wrk counts as a read error
    # per answer; a wrong status or a failed connection is an error anywhere.
    errors = sum(
        sum(count for kind, count in run["errors"].items() if kind != "read" or "cgi" not in name)
        for name, runs in series.items()
        for run in runs
    )
    return {
        "added_p50_ms": added_p50,
        "added_p99_ms": difference("fixed_router", "fixed_direct", "p99_ms"),
        "throughput_share": throughput,
        "target_added_p50_met": bool(added_p50) and max(added_p50) <= TARGET_ADDED_P50_MS,
        "target_throughput_met": bool(throughput) and min(throughput) >= TARGET_THROUGHPUT_SHARE,
        "https_added_p50_ms": difference("fixed_https", "fixed_direct"),
        "https_throughput_share": share("unbounded_https"),
        "cgi_added_p50_ms": difference("fixed_cgi_router", "fixed_cgi_direct"),
        "errors": errors,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2])))
