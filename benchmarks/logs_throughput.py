"""Berth's log collector under a chatty app: 5,000 lines/s in total from 3 replicas on 2 hosts, read by a live tail.

Berth's issue: "a benchmark with an app printing 5,000 lines/s across 3 replicas on 2 hosts: all lines delivered
to a tail in order per container, end-to-end lag p99 ≤ 1 s, and the collector's CPU cost written down."

- Hosts: the first two of `BERTH_BENCH_HOSTS`, registered as Berth's hosts; Redis for the logs: a
  `redis-server` of the benchmark's own (`_logbench.OwnRedis`), so its CPU and memory are the logs' alone.
  The store's bound is raised (`BERTH_LOG_MAX_LINES`) above the run's lines, so a missing line is one the
  collector lost, never one the bound trimmed.
- The app: berth-test/nobind:v1 (busybox) with a process type `printer` whose command is a busybox `sh -c`
  loop (PRINTER below), 3 replicas deployed by Berth's own deploy code (`run_app_deployments`, placement
  spreads them over both hosts), hardened like any container (64 MB, 0.5 CPU). Each replica prints
  `printer.<index> <n> <padding>` for n = 1, 2, … at RATE/3 lines/s, each line one write(2), paced by the
  kernel's /proc/uptime (shared by every container on this machine, read without a fork), in bursts every
  20 ms; all three begin at one moment, set a little after the deployment is expected to end.
- The collector: `python -m worker.logs` as the Procfile starts it, in its own process group, started
  before the deployment so it meets the containers as they start (its threads, followers and writer
  are its own business).
- The tail: a thread of the measuring process that reads the app's stream with XREAD BLOCK from the
  start, as a live tail does, and notes when it saw each line. Lag = that moment minus the line's Docker
  timestamp (both this machine's clock: the hosts are network namespaces of it).

Figures: lines printed, stored and seen; per replica, lines missing, doubled or out of order (in the tail's
order and in the stream's); the rate Docker stamped; lag p50/p90/p99/max, and p99 per 10 s of the run; the
collector's CPU seconds per 1,000 lines (user+system of its process group while the lines flowed, less what
it used idle over as long), its idle CPU and its memory; the CPU of the logs' Redis and of the two hosts'
dockerd (json-file logging, and serving the followers) over the same time.
"""

import itertools
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _logbench
from _router import group_cpu_s

NAME = "logs_throughput"
ORG = "bench-logs"
DATABASE = "berth_bench_logs"
IMAGE = "berth-test/nobind:v1"
RATE = 5_000  # lines per second, all replicas together
REPLICAS = 3
DURATION_S = 60
LINE_CHARS = 100
SIZE = ("bench-logs", 64, 500)
START_AFTER_S = 30  # the printing begins this long after the release is created
IDLE_S = 10  # the collector's idle CPU is measured over this long, containers up, before they print
DRAIN_S = 30  # how long after the last line is due the tail may still wait for it

# $1 lines/s, $2 lines in all, $3 the moment to begin (/proc/uptime in hundredths), $4 padding. `read` and
# arithmetic are the shell's own; only `sleep` forks. Lines already due are printed at once, so the rate
# holds whatever the scheduler does.
PRINTER = (
    'me="$BERTH_PROCESS_TYPE.$BERTH_INDEX"; n=0; '
    'while [ "$n" -lt "$2" ]; do '
    "read up idle < /proc/uptime; now=$(( ${up%.*} * 100 + 1${up#*.} - 100 )); "
    'if [ "$now" -ge "$3" ]; then due=$(( (now - $3) * $1 / 100 )); [ "$due" -gt "$2" ] && due=$2; '
    'while [ "$n" -lt "$due" ]; do n=$((n + 1)); echo "$me $n $4"; done; fi; '
    "sleep 0.02; "
    "done; exec /bin/idle"
)


def run(*, duration_s: int = DURATION_S, rate: int = RATE) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=duration_s + 420)
    runner.hosts = runner.hosts[:2]
    return runner.run([str(duration_s), str(rate)], exclusive_hosts=True)


# --- the measuring child ------------------------------------------------------------------------


def uptime_cs() -> int:
    return round(float(Path("/proc/uptime").read_text().split()[0]) * 100)


def dockerd_pid(host: bench.BenchHost) -> int | None:
    try:
        return int(Path(f"/run/berth-testbed/{host.name}/docker.pid").read_text())
    except (OSError, ValueError):
        return None


def rss_mib(pgid: int) -> float:
    """Resident memory of a process group's processes, MiB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            stat = (status.parent / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for row in status.read_text().splitlines():
                if row.startswith("VmRSS:"):
                    total += int(row.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return round(total / 1024, 1)


class Tail(threading.Thread):
    """Reads the app's stream from its start with XREAD BLOCK, as a live tail does; notes each line as
    (process, n, Docker ns, stored ns, seen ns)."""

    def __init__(self, app_id: int, expected: int):
        super().__init__(daemon=True)
        self.app_id, self.expected = app_id, expected
        self.seen: list[tuple[str, int, int, int, int]] = []
        self.distinct: set[tuple[str, int]] = set()
        self.other: list[str] = []  # Berth's own lines (the deployment's steps)
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        from berth.logs import store

        key, last = store.stream_key(self.app_id), "0-0"
        try:
            while not self.stop.is_set() and len(self.distinct) < self.expected:
                answer = store.client().xread({key: last}, count=2000, block=500)
                now = time.time_ns()
                for _, entries in answer or []:
                    lines = store.parsed(entries)
                    for line in lines:
                        self.note(line, now)
                    if lines:
                        last = lines[-1].id
        except Exception as error:  # reported in the figures; the run's checks then show what is missing
            self.error = f"{error.__class__.__name__}: {error}"

    def note(self, line, now: int) -> None:
        words = line.text.split(" ", 2)
        if line.source == "app" and len(words) >= 2 and words[1].isdigit() and words[0] == line.process:
            stored_ns = int(line.id.split("-")[0]) * 1_000_000  # Redis's clock (ms) when the line was stored
            self.seen.append((line.process, int(words[1]), line.ns, stored_ns, now))
            self.distinct.add((line.process, int(words[1])))
        else:
            self.other.append(line.formatted()[:200])


def json_line(chars: int) -> str:
    """A line of `chars` characters as the json-file driver writes it (its size decides when the file rotates)."""
    entry = {"log": "x" * chars + "\n", "stream": "stdout", "time": "2026-12-06T11:50:15.258992123Z"}
    return json.dumps(entry, separators=(",", ":")) + "\n"


def order_check(rows: list[tuple[str, int, int]], per_replica: int, processes: list[str]) -> dict:
    """Per replica: lines present, missing, doubled, and out of order (a number not one more than the one before,
    or a Docker time not after it), in the order given."""
    out = {}
    for process in processes:
        numbers = [(n, ns) for p, n, ns in rows if p == process]
        seen = [n for n, _ in numbers]
        counts = Counter(seen)
        out[process] = {
            "lines": len(seen),
            "missing": per_replica - len(set(seen)),
            "doubled": len(seen) - len(set(seen)),
            "doubled_numbers": sorted(n for n, count in counts.items() if count > 1)[:10],
            "out_of_order": sum(
                1 for (a, a_ns), (b, b_ns) in itertools.pairwise(numbers) if b != a + 1 or b_ns <= a_ns
            ),
        }
    return out


class Measure:
    def __init__(self, duration_s: int, rate: int):
        from django.conf import settings

        from berth.applications.services import app_create

        self.duration_s, self.rate = duration_s, rate
        self.per_replica = rate // REPLICAS * duration_s
        self.hosts = bench.bench_hosts()[:2]
        self.host_rows = bench.register_fleet(self.hosts, memory_mb=4096)
        bench.size_create(*SIZE)
        self.owner, organization = bench.bench_tenant(ORG)
        self.app = app_create(actor=self.owner, organization=organization, name="chatty")
        self.redis_pid = int(os.environ["BERTH_BENCH_REDIS_PID"])
        self.processes = bench.BerthProcesses(NAME)
        self.bound = settings.BERTH_LOG_MAX_LINES

    def deploy(self, start_cs: int) -> dict:
        from berth.deployments.services import formation_scale, release_create
        from berth.fleet.models import Container
        from worker.deploy import run_app_deployments

        padding = "x" * (LINE_CHARS - len(f"printer.1 {self.per_replica} "))
        command = ["sh", "-c", PRINTER, "printer", str(self.rate // REPLICAS), str(self.per_replica), str(start_cs)]
        printer = {"command": [*command, padding], "port": None, "health_check": {"type": "none"}, "min_ready_s": 0}
        began = time.monotonic()
        release_create(actor=self.owner, app=self.app, image=IMAGE, process_types={"printer": printer})
        formation_scale(actor=self.owner, app=self.app, changes={"printer": {"quantity": REPLICAS}})
        run_app_deployments(self.app.pk)
        containers = list(Container.objects.filter(app=self.app, state=Container.State.RUNNING).select_related("host"))
        placed = {f"printer.{c.index}": c.host.name for c in containers}
        if len(containers) != REPLICAS or len(set(placed.values())) != 2:
            raise RuntimeError(f"expected {REPLICAS} replicas on 2 hosts, found {placed}")
        return {"deploy_s": round(time.monotonic() - began, 1), "placement": placed}

    def cpu(self) -> dict[str, float]:
        collector = self.processes.running["collector"].pid
        figures = {"collector": group_cpu_s(collector), "redis": _logbench.process_cpu_s(self.redis_pid)}
        for host in self.hosts:
            pid = dockerd_pid(host)
            figures[f"dockerd_{host.name}"] = _logbench.process_cpu_s(pid) if pid else 0.0
        figures["tail_and_measuring_process"] = _logbench.process_cpu_s(os.getpid())
        return figures

    def measure(self) -> dict:
        from berth.logs import store

        self.processes.start("collector", [sys.executable, "-m", "worker.logs"])
        time.sleep(3)
        self.processes.check()
        start_cs = uptime_cs() + START_AFTER_S * 100
        deployment = self.deploy(start_cs)
        expected = self.per_replica * REPLICAS
        tail = Tail(self.app.pk, expected)
        tail.start()
        if uptime_cs() > start_cs - IDLE_S * 100 - 100:
            raise RuntimeError(f"the deployment took {deployment['deploy_s']} s: no time left to measure idle CPU")
        while uptime_cs() < start_cs - IDLE_S * 100:
            time.sleep(0.05)
        idle_before = self.cpu()
        while uptime_cs() < start_cs:
            time.sleep(0.05)
        busy_before = self.cpu()
        idle = {name: busy_before[name] - idle_before[name] for name in busy_before}
        context_during = None
        samples = []
        deadline = time.monotonic() + self.duration_s + DRAIN_S
        while len(tail.seen) < expected and time.monotonic() < deadline and tail.is_alive():
            time.sleep(1)
            samples.append((time.monotonic(), len(tail.seen), group_cpu_s(self.processes.running["collector"].pid)))
            if context_during is None and len(samples) == self.duration_s // 2:
                context_during = bench.machine_context(self.hosts)
            self.processes.check()
        busy_after = self.cpu()
        ended_s = round(uptime_cs() / 100 - start_cs / 100, 1)
        memory = rss_mib(self.processes.running["collector"].pid)
        tail.stop.set()
        tail.join(timeout=5)
        self.processes.stop("collector")

        stored = store.parsed(store.client().xrange(store.stream_key(self.app.pk)))
        stored_rows = []
        where: dict[tuple[str, int], list[tuple[str, int, str]]] = {}
        for line in stored:
            words = line.text.split(" ", 2)
            if line.source == "app" and len(words) >= 2 and words[1].isdigit():
                stored_rows.append((line.process, int(words[1]), line.ns))
                where.setdefault((line.process, int(words[1])), []).append((line.id, line.ns, line.stream))
        processes = sorted(deployment["placement"])
        lines = len(tail.seen)
        stamps = [ns for _, _, ns, _, _ in tail.seen]
        lags = [(seen - ns) / 1e6 for _, _, ns, _, seen in tail.seen]
        # Where the lag is: printed -> stored (the collector and Redis; the store's id is in whole milliseconds,
        # so this part reads up to 1 ms short) and stored -> seen (the tail).
        to_store = [(stored - ns) / 1e6 for _, _, ns, stored, _ in tail.seen]
        to_tail = [(seen - stored) / 1e6 for _, _, _, stored, seen in tail.seen]
        windows: dict[int, list[tuple[float, float]]] = {}
        if tail.seen:
            first = min(stamps)
            for _, _, ns, stored, seen in tail.seen:
                windows.setdefault(int((ns - first) / 1e10), []).append(((seen - ns) / 1e6, (stored - ns) / 1e6))
        busy = {name: busy_after[name] - busy_before[name] for name in busy_after}
        flowing_s = max(samples[-1][0] - samples[0][0], 1.0) if samples else 1.0
        per_thousand = {
            name: round(max(busy[name] - idle[name] * flowing_s / IDLE_S, 0.0) / max(lines, 1) * 1000, 4)
            for name in busy
        }
        # json-file rotates a container's file at max-size (10m: 10,000,000 bytes), i.e. at about this line:
        rotation = int(10_000_000 / len(json_line(LINE_CHARS)))
        near = [(seen - ns) / 1e6 for _, n, ns, _, seen in tail.seen if rotation - 500 <= n < rotation + 2500]
        away = [(seen - ns) / 1e6 for _, n, ns, _, seen in tail.seen if not rotation - 500 <= n < rotation + 2500]
        return {
            "rate_asked_lines_per_s": self.rate,
            "replicas": REPLICAS,
            "duration_s": self.duration_s,
            "line_chars": LINE_CHARS,
            "store_bound_lines": self.bound,
            **deployment,
            "lines_printed_expected": expected,
            "lines_stored": len(stored_rows),
            "lines_seen_by_tail": lines,
            "berth_lines_in_stream": len(tail.other),
            "berth_lines_first": tail.other[:3],
            "tail_error": tail.error,
            "tail_order": order_check([(p, n, ns) for p, n, ns, _, _ in tail.seen], self.per_replica, processes),
            "stream_order": order_check(stored_rows, self.per_replica, processes),
            "stream_doubles_examples": [
                {"line": f"{process} {n}", "stored_as": stored}
                for (process, n), stored in list(where.items())
                if len(stored) > 1
            ][:5],
            "docker_rate_lines_per_s": round(lines / ((max(stamps) - min(stamps)) / 1e9), 1) if lines > 1 else None,
            "lag_ms": bench.summary(lags, 1),
            "lag_printed_to_stored_ms": bench.summary(to_store, 1),
            "lag_stored_to_tail_ms": bench.summary(to_tail, 1),
            "lag_p99_ms_per_10s": {
                f"{k * 10}s": {
                    "to_tail": round(bench.percentile([a for a, _ in v], 99), 1),
                    "to_store": round(bench.percentile([b for _, b in v], 99), 1),
                }
                for k, v in sorted(windows.items())
            },
            "lag_near_log_rotation": {
                "line": rotation,
                "p99_ms_near": round(bench.percentile(near, 99), 1) if near else None,
                "p99_ms_elsewhere": round(bench.percentile(away, 99), 1) if away else None,
            },
            "target_p99_le_1s_met": bool(lags) and bench.percentile(lags, 99) <= 1000,
            "all_delivered_in_order": all(
                figures["missing"] == 0 and figures["doubled"] == 0 and figures["out_of_order"] == 0
                for figures in order_check(
                    [(p, n, ns) for p, n, ns, _, _ in tail.seen], self.per_replica, processes
                ).values()
            ),
            "ended_after_start_s": ended_s,
            "cpu_s_idle_over_10s": {name: round(value, 2) for name, value in idle.items()},
            "cpu_s_while_flowing": {name: round(value, 2) for name, value in busy.items()},
            "cpu_s_per_1000_lines_less_idle": per_thousand,
            "collector_cpu_pct_of_one_core_while_flowing": round(busy["collector"] / flowing_s * 100, 1),
            "collector_rss_mib": memory,
            "progress": [
                {"t_s": round(t - samples[0][0], 1), "seen": seen, "collector_cpu_s": round(c, 2)}
                for t, seen, c in samples[:: max(len(samples) // 12, 1)]
            ],
            "context_during": context_during,
        }


def measure(duration_s: int, rate: int) -> dict:
    redis_server = _logbench.OwnRedis(NAME).start()
    os.environ["BERTH_LOG_REDIS_URL"] = redis_server.url
    os.environ["BERTH_BENCH_REDIS_PID"] = str(redis_server.process.pid)
    # Above the run's lines: a missing line is one the collector lost, not one the bound trimmed.
    os.environ["BERTH_LOG_MAX_LINES"] = str(2 * duration_s * rate)
    bench.django_setup()
    runner = Measure(duration_s, rate)
    try:
        return runner.measure()
    finally:
        runner.processes.stop_all()
        redis_server.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2]), int(sys.argv[3])))
elif __name__ == "__main__":
    print(json.dumps(run(), indent=2))
