"""Deploy overhead: Berth's release_create → first container healthy, against a raw `docker run` → first answer.

Berth's issue: "from the Berth call that creates a release until the first container is healthy,
versus raw `docker run` of the same image until its first HTTP answer, side by side on the same host;
target Berth ≤ 1.5 x raw." Everything runs on one test-bed host (the first of BERTH_BENCH_HOSTS),
interleaved, N repetitions of each series:

- raw: `docker -H <host> run -d -p <address>:<port>:8080 berth-test/web:v1`, then GET /cgi-bin/health
  every 10 ms until it answers 200.
- raw_hardened: the same, with the flags Berth's container_spec gives the container (its network,
  cap-drop ALL, no-new-privileges, pids, memory and CPU limits, log options): what Docker itself
  costs for Berth's container shape, so Berth's own overhead can be told apart.
- berth: a new app, `release_create` (the service the API's POST calls) then, in the same thread,
  `worker.deploy.run_app_deployments` (what the deploy task runs), until the "is healthy" step.
- berth_celery (second phase): the same, but the deploy task is run by a real Celery worker
  (`celery -A worker worker --concurrency 2`, as the Procfile starts it), so broker and pick-up are in.

Where Berth's time goes comes from the deployment's timestamped steps and, in-process, from timing
each Engine call and health probe, plus an outside poller (every 10 ms) that tells when the
container really answered, so the health-probe cadence shows up as its own line.
"""

import random
import secrets
import subprocess
import sys
import time

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "deploy_overhead"
ORG = "bench-deploy"
DATABASE = "berth_bench_deploy"
IMAGE = "berth-test/web:v1"
HEALTH_PATH = "/cgi-bin/health"
REPETITIONS = 10
CELERY_REPETITIONS = 10
# The web process of tests/deployments: an HTTP health check, probed every 0.3 s.
WEB = {
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": HEALTH_PATH, "interval_s": 0.3, "retries": 3, "start_period_s": 3},
    }
}
SIZE = ("bench-64", 64, 250)  # name, MB, CPU millis: the tests' "small"
DEPLOY_TIMEOUT_S = 60


def run(*, repetitions: int = REPETITIONS, celery_repetitions: int = CELERY_REPETITIONS) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=1200)
    return runner.run([str(repetitions), str(celery_repetitions)], exclusive_hosts=False)


# --- the measuring child ------------------------------------------------------------------------


class Instrument:
    """Times every Engine call and health probe the deploy makes, and starts an outside poller on each new
    container as soon as its published port is known. Instrumentation only: the calls are Berth's own."""

    def __init__(self):
        self.calls: list[tuple[str, float, float]] = []
        self.pollers: dict[str, bench.Poller] = {}
        self.last_run: str | None = None

    def reset(self) -> None:
        self.calls, self.pollers, self.last_run = [], {}, None

    def install(self) -> None:
        from worker import engine, runtime

        methods = ("__init__", "ensure_network", "ensure_image", "run", "inspect", "image_digest", "stop", "remove")
        for method in methods:
            setattr(engine.Engine, method, self._wrap(method, getattr(engine.Engine, method)))
        runtime.probe = self._wrap("probe", runtime.probe)

    def _wrap(self, name, original):
        def timed(*args, **kwargs):
            began = time.time()
            try:
                result = original(*args, **kwargs)
            finally:
                self.calls.append((name, began, time.time()))
            if name == "run":
                self.last_run = result
            elif name == "inspect" and result is not None and result.docker_id == self.last_run:
                if result.published_port and result.docker_id not in self.pollers:
                    poller = bench.Poller(args[0].host.address, result.published_port, HEALTH_PATH)
                    poller.start()
                    self.pollers[result.docker_id] = poller
            elif name == "probe":
                self.calls[-1] = (f"probe_{'ok' if result[0] else 'fail'}", began, self.calls[-1][2])
            return result

        return timed

    def between(self, start: float, end: float) -> dict[str, float]:
        """Seconds spent per call kind inside [start, end]."""
        spent: dict[str, float] = {}
        for name, began, ended in self.calls:
            if began >= start and ended <= end:
                key = name.split("_")[0] if name.startswith("probe") else name
                spent[key] = spent.get(key, 0.0) + ended - began
        return spent

    def count(self, prefix: str, start: float, end: float) -> int:
        return sum(1 for name, began, _ in self.calls if name.startswith(prefix) and start <= began <= end)


def _steps(deployment) -> dict[str, float]:
    """The time of the first step of each kind, as time.time() values."""
    marks = {}
    for step in deployment.steps.order_by("at", "id"):
        message = step.message
        kind = (
            "queued"
            if message.startswith("Queued")
            else "placed"
            if message.startswith("Starting ")
            else "started"
            if message.startswith("Started ")
            else "healthy"
            if " is healthy (" in message
            else "done"
            if message.startswith("Done")
            else None
        )
        if kind and kind not in marks:
            marks[kind] = step.at.timestamp()
    return marks


class Measure:
    def __init__(self, repetitions: int, celery_repetitions: int):
        from berth.applications.services import app_create
        from berth.deployments.services import formation_scale, release_create

        self.app_create, self.release_create, self.formation_scale = app_create, release_create, formation_scale
        self.repetitions, self.celery_repetitions = repetitions, celery_repetitions
        self.host = bench.bench_hosts()[0]
        [self.host_row] = bench.register_fleet([self.host], memory_mb=4096)
        self.size = bench.size_create(*SIZE)
        self.owner, self.organization = bench.bench_tenant(ORG)
        self.instrument = Instrument()
        self.instrument.install()
        self.apps = 0
        self.used_ports: set[int] = set()
        self.samples: dict[str, list[dict]] = {
            name: [] for name in ("raw", "raw_hardened", "berth", "raw_b", "berth_celery")
        }

    # --- raw docker run ---

    def hardened_flags(self) -> list[str]:
        """Berth's container_spec for this host and size, as `docker run` flags (labels and name aside)."""
        from berth.applications.models import Release
        from worker.containers import container_spec

        release = Release.objects.filter(app__organization=self.organization).select_related("app").first()
        process = release.processes["web"]
        spec = container_spec(
            release=release, process=process, index=0, size=self.size, host=self.host_row, deployment_id=None
        )
        config = spec["host_config"]
        flags = [
            *("--network", config["network_mode"]),
            *[arg for cap in config["cap_drop"] for arg in ("--cap-drop", cap)],
            *[arg for opt in config["security_opt"] for arg in ("--security-opt", opt)],
            *("--pids-limit", str(config["pids_limit"])),
            *("--memory", f"{config['mem_limit']}b", "--memory-swap", f"{config['memswap_limit']}b"),
            *("--cpus", f"{config['nano_cpus'] / 1e9:g}"),
            *("--log-driver", config["log_config"]["Type"]),
            *[arg for k, v in config["log_config"]["Config"].items() for arg in ("--log-opt", f"{k}={v}")],
            *("--restart", config["restart_policy"]["Name"], "--ipc", config["ipc_mode"]),
        ]
        environment = [arg for k, v in spec["environment"].items() for arg in ("-e", f"{k}={v}")]
        return flags, environment

    def raw(self, extra: list[str]) -> dict:
        """`docker run -d -p address:port:8080` then poll; retried on a port some other container holds."""
        for _ in range(5):
            port = random.choice([p for p in range(20000, 30000) if p not in self.used_ports])
            self.used_ports.add(port)
            name = f"{ORG}-raw-{secrets.token_hex(4)}"
            command = [
                *("docker", "-H", self.host.engine_url, "run", "-d", "--name", name),
                *("--label", f"berth-bench={ORG}", "-p", f"{self.host.address}:{port}:8080", *extra, IMAGE),
            ]
            began = time.time()
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            returned = time.time()
            if done.returncode == 0:
                answered = _server.wait_http(self.host.address, port, HEALTH_PATH, timeout_s=30, interval_s=0.01)
                self._docker_rm(name)
                if answered is None:
                    raise RuntimeError(f"raw container {name} never answered on {self.host.address}:{port}")
                return {"total": answered - began, "cli_returned": returned - began}
            self._docker_rm(name)
            if "allocated" not in done.stderr and "in use" not in done.stderr:
                raise RuntimeError(f"docker run failed: {done.stderr[-1000:]}")
        raise RuntimeError("no free port found for the raw container")

    def _docker_rm(self, name: str) -> None:
        subprocess.run(["docker", "-H", self.host.engine_url, "rm", "-f", name], capture_output=True, timeout=60)

    # --- Berth ---

    def new_app(self):
        self.apps += 1
        return self.app_create(actor=self.owner, organization=self.organization, name=f"d{self.apps:03d}")

    def berth(self) -> dict:
        """release_create, then the deploy task's code in this thread; phases from steps and timed calls."""
        from worker.deploy import run_app_deployments

        app = self.new_app()
        self.instrument.reset()
        began = time.time()
        _, deployment = self.release_create(actor=self.owner, app=app, image=IMAGE, process_types=WEB)
        called = time.time()
        run_app_deployments(app.pk)
        returned = time.time()
        deployment.refresh_from_db()
        if deployment.state != "succeeded":
            raise RuntimeError(f"deployment {deployment.pk} {deployment.state}: {deployment.error}")
        marks = _steps(deployment)
        claimed = deployment.started_at.timestamp()
        answered = next(iter(self.instrument.pollers.values())).answered_at if self.instrument.pollers else None
        engine = self.instrument.between(marks["placed"], marks["started"])
        health = marks["healthy"] - marks["started"]
        sample = {
            "total": marks["healthy"] - began,
            "release_create_call": called - began,
            "claim": claimed - called,
            "placement": marks["placed"] - claimed,
            "start": marks["started"] - marks["placed"],
            "start_engine_connect": engine.get("__init__", 0.0),
            "start_ensure_network": engine.get("ensure_network", 0.0),
            "start_ensure_image": engine.get("ensure_image", 0.0),
            "start_create_and_start": engine.get("run", 0.0),
            "start_inspect_and_digest": engine.get("inspect", 0.0) + engine.get("image_digest", 0.0),
            "start_rest_db_and_python": marks["started"] - marks["placed"] - sum(engine.values()),
            "health_wait": health,
            "health_probes": self.instrument.count("probe", marks["started"], marks["healthy"]),
            "health_probe_time": self.instrument.between(marks["started"], marks["healthy"]).get("probe", 0.0),
            # The container answered (outside poller, every 10 ms) before Berth's probe saw it healthy:
            "container_answered_after_start_step": (answered - marks["started"]) if answered else None,
            "berth_saw_healthy_after_answer": (marks["healthy"] - answered) if answered else None,
            "run_returned": returned - began,
        }
        self._scale_to_zero_in_process(app)
        return sample

    def _scale_to_zero_in_process(self, app) -> None:
        from worker.deploy import run_app_deployments

        self.formation_scale(actor=self.owner, app=app, changes={"web": {"quantity": 0}})
        run_app_deployments(app.pk)

    def berth_celery(self) -> dict:
        """release_create; a real Celery worker runs the deployment; this process only watches the database."""
        app = self.new_app()
        began = time.time()
        _, deployment = self.release_create(actor=self.owner, app=app, image=IMAGE, process_types=WEB)
        called = time.time()
        deployment = _wait_finished(deployment)
        if deployment.state != "succeeded":
            raise RuntimeError(f"deployment {deployment.pk} {deployment.state}: {deployment.error}")
        marks = _steps(deployment)
        claimed = deployment.started_at.timestamp()
        sample = {
            "total": marks["healthy"] - began,
            "release_create_call": called - began,
            "claim": claimed - called,
            "placement": marks["placed"] - claimed,
            "start": marks["started"] - marks["placed"],
            "health_wait": marks["healthy"] - marks["started"],
        }
        scale = self.formation_scale(actor=self.owner, app=app, changes={"web": {"quantity": 0}})
        _wait_finished(scale)
        return sample

    # --- the run ---

    def warm_up(self) -> dict:
        """One of each, not counted: the first Berth deploy of the organization also creates its network."""
        return {"berth_first_deploy_s": round(self.berth()["total"], 3), "raw_first_s": round(self.raw([])["total"], 3)}

    def measure(self) -> dict:
        warm = self.warm_up()
        hardened, environment = self.hardened_flags()
        series = [
            ("raw", lambda: self.raw([])),
            ("raw_hardened", lambda: self.raw(hardened + environment)),
            ("berth", self.berth),
        ]
        for rep in range(self.repetitions):
            shift = rep % len(series)  # rotate the order, so no series always follows the same one
            for name, once in series[shift:] + series[:shift]:
                self.samples[name].append(once())
        if self.celery_repetitions:
            self.celery_phase()
        return self.figures(warm, hardened)

    def celery_phase(self) -> None:
        bench.broker_flush()  # the in-process phase's deploy messages: nobody consumed them
        processes = bench.BerthProcesses(NAME)
        try:
            processes.start_worker(beat=False)  # see the module docstring: no beat in this phase
            for rep in range(self.celery_repetitions):
                pair = [("raw_b", lambda: self.raw([])), ("berth_celery", self.berth_celery)]
                for name, once in pair if rep % 2 == 0 else pair[::-1]:
                    self.samples[name].append(once())
        finally:
            processes.stop_all()

    def figures(self, warm: dict, hardened: list[str]) -> dict:
        totals = {name: [s["total"] for s in rows] for name, rows in self.samples.items() if rows}
        figures = {
            "repetitions": self.repetitions,
            "celery_repetitions": self.celery_repetitions,
            "host": self.host.name,
            "image": IMAGE,
            "size": dict(zip(("name", "memory_mb", "cpu_millis"), SIZE, strict=True)),
            "health_check": WEB["web"]["health_check"],
            "raw_hardened_flags": " ".join(hardened) + " -e PORT=8080 -e BERTH_APP=… (the spec's environment)",
            "warm_up": warm,
            "total_s": {name: bench.summary(values) for name, values in totals.items()},
        }
        ratios = {}
        pairs = (("berth", "raw"), ("berth", "raw_hardened"), ("raw_hardened", "raw"), ("berth_celery", "raw_b"))
        for berth, raw in pairs:
            if berth in totals and raw in totals:
                ratios[f"{berth}/{raw}"] = {
                    p: round(bench.percentile(totals[berth], q) / bench.percentile(totals[raw], q), 2)
                    for p, q in (("p50", 50), ("p90", 90))
                }
        figures["ratio"] = ratios
        for name in ("berth", "berth_celery"):
            rows = self.samples[name]
            if rows:
                keys = [k for k in rows[0] if k != "total"]
                figures[f"{name}_phases_s"] = {k: bench.summary([r[k] for r in rows if r[k] is not None]) for k in keys}
        figures["raw_cli_returned_s"] = bench.summary([s["cli_returned"] for s in self.samples["raw"]])
        figures["samples"] = {
            name: [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
            for name, rows in self.samples.items()
        }
        return figures


def _wait_finished(deployment, timeout_s: float = DEPLOY_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if deployment.state in ("succeeded", "failed"):
            return deployment
        time.sleep(0.2)  # the figures come from Berth's timestamps; polling faster only takes CPU from the deploy
    raise RuntimeError(f"deployment {deployment.pk} still {deployment.state} after {timeout_s} s")


def measure(repetitions: int, celery_repetitions: int) -> dict:
    bench.django_setup()
    return Measure(repetitions, celery_repetitions).measure()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2]), int(sys.argv[3])))
