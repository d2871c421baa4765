"""Deploy overhead: Berth's API request → first container healthy, against a raw `docker run` → first answer.

Berth's issue: "Deploy overhead: API request → first container healthy, against raw `docker run` of the
same image until its first HTTP answer, measured side by side in one run on the same host. Target: Berth
≤ 1.5 x raw." Everything runs on one test-bed host (the first of BERTH_BENCH_HOSTS), interleaved, N
repetitions of each series:

- raw: `docker -H <host> run -d -p <address>:<port>:8080 berth-test/web:v1`, then GET /cgi-bin/health
  every 10 ms until it answers 200.
- raw_hardened: the same, with the flags Berth's container_spec gives the container (its network,
  cap-drop ALL, no-new-privileges, pids, memory and CPU limits, log options): what Docker itself
  costs for Berth's container shape, so Berth's own overhead can be told apart.
- berth: a new app, `release_create` (the service the API's POST calls) then, in the same thread,
  `worker.deploy.run_app_deployments` (what the deploy task runs), until the "is healthy" step.
- berth_celery (second phase): the same, but the deploy task is run by a real Celery worker
  (`celery -A worker worker --concurrency 2`, as the Procfile starts it), so broker and pick-up are in.
- berth_api (third phase, beside raw_c): what the issue names. Gunicorn as the Procfile starts it
  (`_server.gunicorn_start`, production settings, the Procfile's 3 sync workers) and the same Celery worker;
  the clock starts when the client sends `POST /api/v1/orgs/<org>/apps/<app>/releases/` with the owner's
  API token and stops at the "is healthy" step. The request's own duration and status (201) are recorded,
  and an outside poller, started from the host's Docker `start` event of the app's container, says when
  the container first answered.

Every Berth series also records the time to the deployment's "Done" step (`to_done`, `<series>_done` in the
figures), which since the minimum ready time (worker.runtime.wait_ready, 5 s by default) comes that long after
"is healthy": the cost of that safety, beside the figure the issue names, which it does not change.

Where Berth's time goes comes from the deployment's timestamped steps and, in-process, from timing
each Engine call and health probe, plus an outside poller (every 10 ms) that tells when the
container really answered, so the health-probe cadence shows up as its own line.
"""

import contextlib
import random
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "deploy_overhead"
ORG = "bench-deploy"
DATABASE = "berth_bench_deploy"
IMAGE = "berth-test/web:v1"
IMAGE_USER = "10001:10001"  # what the image's config says (testbed/images/web/Dockerfile)
HEALTH_PATH = "/cgi-bin/health"
REPETITIONS = 10
CELERY_REPETITIONS = 10
API_REPETITIONS = 10
WEB_WORKERS = 3  # the Procfile's `gunicorn … --workers 3`
# The web process of tests/deployments: an HTTP health check, probed every 0.3 s.
WEB = {
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": HEALTH_PATH, "interval_s": 0.3, "retries": 3, "start_period_s": 3},
    }
}
SIZE = ("bench-64", 64, 250)  # name, MB, CPU millis: the tests' "small"
DEPLOY_TIMEOUT_S = 60


def run(
    *,
    repetitions: int = REPETITIONS,
    celery_repetitions: int = CELERY_REPETITIONS,
    api_repetitions: int = API_REPETITIONS,
) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=1200)
    return runner.run([str(repetitions), str(celery_repetitions), str(api_repetitions)], exclusive_hosts=False)


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

        methods = ("__init__", "ensure_network", "ensure_image", "run", "inspect", "stop", "remove")
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


class StartWatcher(threading.Thread):
    """An outside poller for a deploy Berth runs in another process: follows the host's Docker events for the
    app's first container `start`, inspects it for its published port, then asks the health path every 10 ms.
    The events stream is opened (and replays from a second back) before the request, so no start is missed."""

    def __init__(self, host: bench.BenchHost, app_id: int):
        super().__init__(daemon=True)
        self.host = host
        self.client = bench._client(host)
        self.stream = self.client.events(
            since=int(time.time()) - 1,
            filters={"type": "container", "event": "start", "label": f"berth.app_id={app_id}"},
            decode=True,
        )
        self.started_at: float | None = None  # the engine's own time of the start event
        self.answered_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            for event in self.stream:
                self.started_at = event["timeNano"] / 1e9
                ports = self.client.inspect_container(event["id"])["NetworkSettings"]["Ports"] or {}
                port = next(int(b[0]["HostPort"]) for b in ports.values() if b)
                self.answered_at = _server.wait_http(self.host.address, port, HEALTH_PATH, timeout_s=30)
                return
        except Exception as error:  # reported in the sample as a missing answer, never raised
            self.error = f"{error.__class__.__name__}: {error}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        self.join(timeout=5)
        self.client.close()


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
            else "ready"
            if " is ready: " in message
            else "done"
            if message.startswith("Done")
            else None
        )
        if kind and kind not in marks:
            marks[kind] = step.at.timestamp()
    return marks


class Measure:
    def __init__(self, repetitions: int, celery_repetitions: int, api_repetitions: int):
        from berth.applications.services import app_create
        from berth.deployments.services import formation_scale, release_create

        self.app_create, self.release_create, self.formation_scale = app_create, release_create, formation_scale
        self.repetitions, self.celery_repetitions = repetitions, celery_repetitions
        self.api_repetitions = api_repetitions
        self.host = bench.bench_hosts()[0]
        [self.host_row] = bench.register_fleet([self.host], memory_mb=4096)
        self.size = bench.size_create(*SIZE)
        self.owner, self.organization = bench.bench_tenant(ORG)
        self.instrument = Instrument()
        self.instrument.install()
        self.apps = 0
        self.used_ports: set[int] = set()
        self.samples: dict[str, list[dict]] = {
            name: [] for name in ("raw", "raw_hardened", "berth", "raw_b", "berth_celery", "raw_c", "berth_api")
        }
        self.api: dict = {}  # the web server and its client, while the API phase runs

    # --- raw docker run ---

    def hardened_flags(self) -> list[str]:
        """Berth's container_spec for this host and size, as `docker run` flags (labels and name aside)."""
        from berth.applications.models import Release
        from worker.containers import container_spec

        release = Release.objects.filter(app__organization=self.organization).select_related("app").first()
        process = release.processes["web"]
        spec = container_spec(
            release=release,
            process=process,
            index=0,
            size=self.size,
            host=self.host_row,
            deployment_id=None,
            image_user=IMAGE_USER,
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
        engine = self.instrument.between(claimed, marks["healthy"])
        ran_began, ran = next((began, ended) for name, began, ended in self.instrument.calls if name == "run")
        looked_up = [ended for name, _, ended in self.instrument.calls if name == "ensure_image" and ended <= ran_began]
        # On a host that does not remap user namespaces, the image is looked up (to learn its user) before the
        # create (worker.runtime.start_container, `find_first`); on one that does, alongside the create
        # (`_create_and_start`). Docker's create and start, the look at the new container, the probe, and the
        # lookup when it comes first are the start's critical path on the engine side.
        critical = ("__init__", "run", "inspect", "probe") + (("ensure_image",) if looked_up else ())
        waited_on_engine = sum(engine.get(name, 0.0) for name in critical)
        sample = {
            "total": marks["healthy"] - began,
            "release_create_call": called - began,
            "claim": claimed - called,
            "placement": marks["placed"] - claimed,  # the "Starting" step is written once the create is sent
            "start": marks["started"] - marks["placed"],
            "health_wait": marks["healthy"] - marks["started"],  # 0 when the probe at start saw it healthy
            # Engine calls and probes from the claim to healthy:
            "engine_connect": engine.get("__init__", 0.0),
            "engine_ensure_network": engine.get("ensure_network", 0.0),
            "engine_image_lookup": engine.get("ensure_image", 0.0),
            "image_lookup_before_create": 1.0 if looked_up else 0.0,
            "engine_create_and_start": engine.get("run", 0.0),
            "engine_inspect": engine.get("inspect", 0.0),
            "probes": self.instrument.count("probe", claimed, marks["healthy"]),
            "probe_time": engine.get("probe", 0.0),
            # From the claim to healthy, what Berth spent in its database and Python with no engine call to wait on:
            "db_and_python": marks["healthy"] - claimed - waited_on_engine,
            # The container answered (outside poller, every 10 ms) this long after Docker's start returned,
            # and Berth recorded it healthy this long after that first answer:
            "container_answered_after_start": (answered - ran) if answered else None,
            "berth_saw_healthy_after_answer": (marks["healthy"] - answered) if answered else None,
            "run_returned": returned - began,
            # The deployment's "Done" step: after the minimum ready time (worker.runtime.wait_ready).
            "to_done": marks["done"] - began,
            "ready_wait": marks["done"] - marks["healthy"],
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
            "to_done": marks["done"] - began,
            "ready_wait": marks["done"] - marks["healthy"],
        }
        scale = self.formation_scale(actor=self.owner, app=app, changes={"web": {"quantity": 0}})
        _wait_finished(scale)
        return sample

    def berth_api(self) -> dict:
        """POST …/releases/ to gunicorn with the owner's token; the Celery worker deploys; this process watches the
        database (Berth's timestamps) and, from the host's start event, polls the container from outside."""
        client, base = self.api["client"], self.api["base"]
        app = self.new_app()
        watcher = StartWatcher(self.host, app.pk)
        watcher.start()
        from berth.deployments.models import Deployment

        body = {"image": IMAGE, "process_types": WEB}
        try:
            began = time.time()
            response = client.post(f"{base}/apps/{app.name}/releases/", json=body)
            responded = time.time()
            if response.status_code != 201:
                raise RuntimeError(f"POST …/releases/ answered {response.status_code}: {response.text[:1000]}")
            deployment = _wait_finished(Deployment.objects.get(pk=response.json()["deployment"]["id"]))
            watcher.join(timeout=10)
        finally:
            watcher.close()
        if deployment.state != "succeeded":
            raise RuntimeError(f"deployment {deployment.pk} {deployment.state}: {deployment.error}")
        marks = _steps(deployment)
        created, claimed = deployment.created_at.timestamp(), deployment.started_at.timestamp()
        answered = watcher.answered_at
        sample = {
            "total": marks["healthy"] - began,
            "status": response.status_code,
            "request": responded - began,
            "answered": (answered - began) if answered else None,
            "created": created - began,
            "claim": claimed - created,
            "placement": marks["placed"] - claimed,
            "start": marks["started"] - marks["placed"],
            "health_wait": marks["healthy"] - marks["started"],
            "claimed_after_response": claimed - responded,
            "container_start_event": (watcher.started_at - began) if watcher.started_at else None,
            "container_answered_after_start_event": (answered - watcher.started_at)
            if answered and watcher.started_at
            else None,
            "berth_saw_healthy_after_answer": (marks["healthy"] - answered) if answered else None,
            "poller_error": watcher.error,
            # The deployment's "Done" step: after the minimum ready time (worker.runtime.wait_ready).
            "to_done": marks["done"] - began,
            "ready_wait": marks["done"] - marks["healthy"],
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
        if self.celery_repetitions or self.api_repetitions:
            self.worker_phases(warm)
        return self.figures(warm, hardened)

    def worker_phases(self, warm: dict) -> None:
        """berth_celery beside raw_b with the Celery worker alone, then gunicorn too and berth_api beside raw_c."""
        bench.broker_flush()  # the in-process phase's deploy messages: nobody consumed them
        processes = bench.BerthProcesses(NAME)
        try:
            processes.start_worker(beat=False)  # see the module docstring: no beat in these phases
            self.pairs("raw_b", "berth_celery", self.berth_celery, self.celery_repetitions)
            if self.api_repetitions:
                port, command = processes.start_web(WEB_WORKERS)
                warm["api"] = self.api_start(port, command)
                try:
                    self.pairs("raw_c", "berth_api", self.berth_api, self.api_repetitions)
                finally:
                    self.api.pop("client").close()
        finally:
            processes.stop_all()

    def pairs(self, raw_name: str, berth_name: str, berth_once, repetitions: int) -> None:
        for rep in range(repetitions):
            pair = [(raw_name, lambda: self.raw([])), (berth_name, berth_once)]
            for name, once in pair if rep % 2 == 0 else pair[::-1]:
                self.samples[name].append(once())

    def api_start(self, port: int, command: str) -> dict:
        """The owner's API token, a client, and every gunicorn worker warmed up, as a long-running server's workers
        are: a sync worker's first request loads what Django loads lazily, and its first deploy imports Celery and
        connects to the broker (~0.25 s, once per worker). So 2 x workers clients ask the release list and POST an
        invalid release (400: routing, token, permission, serializer) 5 times each; then, twice, one real deploy
        POST per worker, sent together (a sync worker busy with one request accepts no other, so each worker
        almost surely gets one; their durations are recorded); then one more real deploy, alone, not counted."""
        import httpx

        from berth.deployments.models import Deployment
        from berth.tenancy.services import api_token_create

        _, token = api_token_create(actor=self.owner, name="deploy_overhead benchmark")
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}/api/v1/orgs/{ORG}"
        self.api = {"client": httpx.Client(headers=headers, timeout=30), "base": base}
        app = self.new_app()
        statuses: Counter = Counter()

        def cheap(_: int) -> None:
            with httpx.Client(headers=headers, timeout=30) as client:
                for _ in range(5):
                    statuses[client.get(f"{base}/apps/{app.name}/releases/").status_code] += 1
                    invalid = client.post(f"{base}/apps/{app.name}/releases/", json={"image": "not an image!"})
                    statuses[invalid.status_code] += 1

        _together(cheap, 2 * WEB_WORKERS)
        if set(statuses) != {200, 400}:
            raise RuntimeError(f"warming gunicorn up: unexpected answers {dict(statuses)}")

        deploy_requests = []
        for _ in range(2):
            apps = [self.new_app() for _ in range(WEB_WORKERS)]
            answers: list = [None] * WEB_WORKERS

            def deploy(i: int, apps=apps, answers=answers) -> None:
                with httpx.Client(headers=headers, timeout=30) as client:
                    began = time.time()
                    response = client.post(
                        f"{base}/apps/{apps[i].name}/releases/", json={"image": IMAGE, "process_types": WEB}
                    )
                    answers[i] = (response, time.time() - began)

            _together(deploy, WEB_WORKERS)
            for (response, seconds), each in zip(answers, apps, strict=True):
                if response.status_code != 201:
                    raise RuntimeError(f"warming up: POST …/releases/ answered {response.status_code}")
                deploy_requests.append(round(seconds, 3))
                _wait_finished(Deployment.objects.get(pk=response.json()["deployment"]["id"]))
                _wait_finished(self.formation_scale(actor=self.owner, app=each, changes={"web": {"quantity": 0}}))
        first = self.berth_api()
        return {
            "gunicorn": command,
            "warm_up_requests": dict(statuses),
            "warm_up_deploy_requests_s": deploy_requests,
            "berth_api_first_deploy_s": round(first["total"], 3),
            "berth_api_first_request_s": round(first["request"], 3),
        }

    def min_ready_s(self) -> float:
        """The release's minimum ready time for web, as its process types were parsed (the default here)."""
        from berth.applications.models import Release

        release = Release.objects.filter(app__organization=self.organization).order_by("-pk").first()
        return release.processes["web"].min_ready_s

    def figures(self, warm: dict, hardened: list[str]) -> dict:
        totals = {name: [s["total"] for s in rows] for name, rows in self.samples.items() if rows}
        figures = {
            "repetitions": self.repetitions,
            "celery_repetitions": self.celery_repetitions,
            "api_repetitions": self.api_repetitions,
            "host": self.host.name,
            "image": IMAGE,
            "size": dict(zip(("name", "memory_mb", "cpu_millis"), SIZE, strict=True)),
            "health_check": WEB["web"]["health_check"],
            "raw_hardened_flags": " ".join(hardened) + " -e PORT=8080 -e BERTH_APP=… (the spec's environment)",
            "warm_up": warm,
            "total_s": {name: bench.summary(values) for name, values in totals.items()},
        }
        ratios = {}
        if self.samples["berth_api"]:
            totals["berth_api_answered"] = [s["answered"] for s in self.samples["berth_api"] if s["answered"]]
        # To the "Done" step, the minimum ready time included: the trade-off it makes, beside the same raw series.
        for name in ("berth", "berth_celery", "berth_api"):
            if self.samples[name]:
                totals[f"{name}_done"] = [s["to_done"] for s in self.samples[name]]
        figures["total_s"].update(
            {name: bench.summary(values) for name, values in totals.items() if name not in figures["total_s"]}
        )
        figures["min_ready_s"] = self.min_ready_s()
        pairs = (
            ("berth", "raw"),
            ("berth", "raw_hardened"),
            ("raw_hardened", "raw"),
            ("berth_celery", "raw_b"),
            ("berth_api", "raw_c"),
            ("berth_api_answered", "raw_c"),
            ("berth_done", "raw"),
            ("berth_celery_done", "raw_b"),
            ("berth_api_done", "raw_c"),
        )
        for berth, raw in pairs:
            if totals.get(berth) and totals.get(raw):
                ratios[f"{berth}/{raw}"] = {
                    p: round(bench.percentile(totals[berth], q) / bench.percentile(totals[raw], q), 2)
                    for p, q in (("p50", 50), ("p90", 90))
                }
        figures["ratio"] = ratios
        for name in ("berth", "berth_celery", "berth_api"):
            rows = self.samples[name]
            if rows:
                keys = [k for k in rows[0] if k not in ("total", "status", "poller_error")]
                figures[f"{name}_phases_s"] = {k: bench.summary([r[k] for r in rows if r[k] is not None]) for k in keys}
        if self.samples["berth_api"]:
            figures["berth_api_status_codes"] = dict(Counter(str(r["status"]) for r in self.samples["berth_api"]))
            figures["berth_api_poller_errors"] = [
                r["poller_error"] for r in self.samples["berth_api"] if r["poller_error"]
            ]
        figures["raw_cli_returned_s"] = bench.summary([s["cli_returned"] for s in self.samples["raw"]])
        figures["samples"] = {
            name: [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
            for name, rows in self.samples.items()
        }
        return figures


def _together(function, threads: int) -> None:
    """function(0) … function(threads - 1), each in its own thread, released together."""
    barrier = threading.Barrier(threads)

    def released(i: int) -> None:
        barrier.wait()
        function(i)

    workers = [threading.Thread(target=released, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _wait_finished(deployment, timeout_s: float = DEPLOY_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if deployment.state in ("succeeded", "failed"):
            return deployment
        time.sleep(0.2)  # the figures come from Berth's timestamps; polling faster only takes CPU from the deploy
    raise RuntimeError(f"deployment {deployment.pk} still {deployment.state} after {timeout_s} s")


def measure(repetitions: int, celery_repetitions: int, api_repetitions: int) -> dict:
    bench.django_setup()
    return Measure(repetitions, celery_repetitions, api_repetitions).measure()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(*(int(arg) for arg in sys.argv[2:5])))
