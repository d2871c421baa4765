"""Self-heal: `docker kill` a running replica → its replacement healthy, as Berth runs at run time.

Berth's issue: "self-heal: docker kill a running replica → replacement healthy, p50 and p99 over 20
kills; drive it as Berth would at run time: the events stream should wake a reconcile; target p99 ≤ 3 s."

Berth runs here as the Procfile runs it, on the benchmark's database and broker: a real Celery worker
(`celery -A worker worker --concurrency 2`) and beat (whose periodic reconcile every 10 s and probes
every 5 s are the safety net), plus one of two wakers, one after the other:

- events: `python -m worker.events` (worker/events.py), which follows every host's Docker events
  and sends `berth.fleet.reconcile_host` for the host at once;
- periodic: no event follower; this process runs the reconcile_host task's body for every host every
  0.5 s (what the issue asks for when no event watcher exists), the heal deployments still going
  through the broker to the worker.

For each mode, KILLS apps with one web replica each (spread over the hosts) are killed one at a time
(SIGKILL through the engine API, as `docker kill` does), one kill per app so that each is that
release's first crash. The figure is from the kill until the heal deployment's "is healthy" step for
the replacement, with the time split into: noticed (kill → heal deployment created), picked up by the
worker, container started, health check passed. The replacement must then answer HTTP. Between kills
the benchmark waits 1 s plus a random 0 to 10 s (seeded), so the kills fall at random points of beat's
10 s reconcile cycle, as real crashes would.

A last series kills one app REPEATS times in a row, to show Berth's crash back-off
(docs/deploys.md#crashes-after-going-live-workerhealingpy) at work.
"""

import random
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "self_heal"
ORG = "bench-heal"
DATABASE = "berth_bench_heal"
IMAGE = "berth-test/web:v1"
HEALTH_PATH = "/cgi-bin/health"
KILLS = 20
REPEATS = 4
REPLICAS = 3  # the series: one app of 3 web replicas, KILLS kills of a randomly chosen one
REPLICA_SEED = 20261206
PERIODIC_S = 0.5
KILL_TIMEOUT_S = 75.0  # a deploy task that dies is resumed by the stale sweep: 30 s + the 10 s pass
SETTLE_S = 1.0
BEAT_RECONCILE_S = 10.0  # worker/celery.py: berth.fleet.reconcile every 10 s
TARGET_P99_S = 3.0
SIZE = ("bench-64", 64, 250)
WEB = {
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": HEALTH_PATH, "interval_s": 0.3, "retries": 3, "start_period_s": 3},
    }
}
# The one-replica apps of the first series are deployed in this process before Berth runs, 41 of them: without
# the minimum ready time (5 s each by default) that setup takes 0.5 s an app instead of 5.5 s. A heal skips the
# minimum ready time whatever the release says (worker/deploy.py, Rollout.wait_ready), so the kills measure the
# same. The 3-replica app keeps the default, as a user's release would.
WEB_NO_MIN_READY = {"web": {**WEB["web"], "min_ready_s": 0}}


def run(*, kills: int = KILLS, repeats: int = REPEATS) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=2400)
    return runner.run([str(kills), str(repeats)], exclusive_hosts=True)


# --- the measuring child ------------------------------------------------------------------------


def events_watcher_available() -> bool:
    try:
        from worker import events
    except ImportError:
        return False
    return hasattr(events, "main")


class PeriodicReconciler(threading.Thread):
    """The reconcile_host task's body for every host, every PERIODIC_S seconds, in this process."""

    def __init__(self, host_ids: list[int]):
        super().__init__(daemon=True, name="periodic-reconcile")
        self.host_ids = host_ids
        self.stopping = threading.Event()
        self.passes = 0
        self.errors: list[str] = []

    def run(self) -> None:
        from django.db import connection

        from worker.tasks import reconcile_host

        try:
            while not self.stopping.is_set():
                began = time.monotonic()
                for host_id in self.host_ids:
                    try:
                        reconcile_host(host_id)
                    except Exception as error:  # counted and reported; the loop goes on
                        self.errors.append(f"{error.__class__.__name__}: {error}"[:300])
                self.passes += 1
                self.stopping.wait(max(0.0, PERIODIC_S - (time.monotonic() - began)))
        finally:
            connection.close()


class EventRecorder(threading.Thread):
    """Timestamps the Docker events of this benchmark's containers on one host, for the kill/die timeline."""

    def __init__(self, engine_url: str):
        import docker

        super().__init__(daemon=True, name=f"events-{engine_url}")
        self.client = docker.APIClient(base_url=engine_url, timeout=None, version="auto")
        self.stream = self.client.events(decode=True, filters={"type": "container", "label": f"berth.org={ORG}"})
        self.seen: list[tuple[float, str, str]] = []

    def run(self) -> None:
        try:
            for event in self.stream:
                self.seen.append((time.time(), event.get("Action", ""), event.get("id", "")))
        except Exception:  # noqa: S110 - the stream ends when it is closed
            pass

    def first(self, docker_id: str, action: str, after: float) -> float | None:
        return next((at for at, act, i in list(self.seen) if i == docker_id and act == action and at >= after), None)

    def close(self) -> None:
        self.stream.close()
        self.client.close()


class Measure:
    def __init__(self, kills: int, repeats: int):
        import docker

        from berth.applications.services import app_create
        from berth.deployments.services import release_create

        self.kills, self.repeats = kills, repeats
        self.hosts = bench.bench_hosts()
        self.host_rows = bench.register_fleet(self.hosts, memory_mb=8192)
        bench.size_create(*SIZE)
        self.owner, self.organization = bench.bench_tenant(ORG)
        self.app_create, self.release_create = app_create, release_create
        self.clients = {
            row.pk: docker.APIClient(base_url=row.engine_url, timeout=30, version="auto") for row in self.host_rows
        }
        self.recorders = {row.pk: EventRecorder(row.engine_url) for row in self.host_rows}
        for recorder in self.recorders.values():
            recorder.start()
        self.processes = bench.BerthProcesses(NAME)
        self.random = random.Random(20261127)
        self.modes = ["events", "periodic"] if events_watcher_available() else ["periodic"]

    def deploy_apps(self, prefix: str, count: int) -> list:
        """Apps of one web replica each, deployed with the deploy task's code in this process."""
        from worker.deploy import run_app_deployments

        apps = []
        for n in range(count):
            app = self.app_create(actor=self.owner, organization=self.organization, name=f"{prefix}{n:02d}")
            self.release_create(actor=self.owner, app=app, image=IMAGE, process_types=WEB_NO_MIN_READY)
            run_app_deployments(app.pk)
            apps.append(app)
        return apps

    # --- one kill ---

    def kill_and_wait(self, app) -> dict:
        """Kill the app's replica; wait until another replica is healthy and no heal deployment is under way."""
        from berth.deployments.models import Deployment
        from berth.fleet.models import Container

        victim = Container.objects.select_related("host").get(
            app=app, state__in=Container.LIVE, health=Container.Health.HEALTHY
        )
        self.processes.check()
        began = time.time()
        self.clients[victim.host_id].kill(victim.docker_id)
        since = datetime.fromtimestamp(began, UTC)
        heals = Deployment.objects.filter(app=app, kind=Deployment.Kind.HEAL, created_at__gte=since).order_by("id")
        healthy = Container.objects.filter(app=app, state__in=Container.LIVE, health=Container.Health.HEALTHY).exclude(
            pk=victim.pk
        )
        deadline = time.monotonic() + KILL_TIMEOUT_S
        seen_healthy = None
        while time.monotonic() < deadline:
            if seen_healthy is None and healthy.exists():
                seen_healthy = time.time()
            if seen_healthy is not None and not heals.filter(state__in=Deployment.UNFINISHED).exists():
                break
            time.sleep(0.1)  # light polling: the figures come from Berth's timestamps where it wrote them
        else:
            victim.refresh_from_db()
            return {"total": None, "timed_out": True, "victim_state": victim.state, "host": victim.host.name}
        victim.refresh_from_db()
        [replacement] = healthy.select_related("host")
        answers = _server.http_ok(replacement.host.address, replacement.published_port, HEALTH_PATH, timeout=5)
        if not answers:
            raise RuntimeError(f"the replacement {replacement.name} of {app.name} does not answer")
        return {**self._timeline(heals, replacement, began, seen_healthy), **self._docker_timeline(victim, began)}

    def _timeline(self, heals, replacement, began: float, seen_healthy: float) -> dict:
        """From the heal deployment's steps; when no step says the replacement is healthy (the deploy task
        failed and the replica came another way), the time this process first saw it healthy."""
        heal = heals.first()
        messages = list(heal.steps.order_by("at", "id").values_list("message", "at")) if heal else []
        marks = {}
        for message, at in messages:
            kind = (
                "placed"
                if message.startswith("Starting ")
                else "started"
                if message.startswith("Started ")
                else "healthy"
                if replacement.name in message and " is healthy (" in message
                else None
            )
            if kind and kind not in marks:
                marks[kind] = at.timestamp()
        complete = {"placed", "started", "healthy"} <= set(marks) and heal.started_at is not None
        created = heal.created_at.timestamp() if heal else None
        return {
            "total": (marks["healthy"] if complete else seen_healthy) - began,
            "killed_at": began,
            "heal_created_at": created,
            "noticed": (created - began) if created else None,
            "picked_up": (heal.started_at.timestamp() - created) if complete else None,
            "placement": (marks["placed"] - heal.started_at.timestamp()) if complete else None,
            "start": (marks["started"] - marks["placed"]) if complete else None,
            "health_wait": (marks["healthy"] - marks["started"]) if complete else None,
            "heal_deployments": heals.count(),
            "heal_attempts": max((h.attempts for h in heals), default=0),
            # The deploy task did not see its own replica through (see the README: the adoption race).
            "replaced_by_its_deploy": complete,
        }

    def _docker_timeline(self, victim, began: float) -> dict:
        recorder = self.recorders[victim.host_id]
        kill_event, die_event = (recorder.first(victim.docker_id, action, began) for action in ("kill", "die"))
        return {
            "kill_event": (kill_event - began) if kill_event else None,
            "die_event": (die_event - began) if die_event else None,
            "exited_at_host": (victim.finished_at.timestamp() - began) if victim.finished_at else None,
            "victim_state": victim.state,
            "host": victim.host.name,
        }

    def kill_series(self, apps: list) -> list[dict]:
        rows = []
        for app in apps:
            rows.append(self.kill_and_wait(app))
            # The replaced container's events pass; then a random wait, so kills do not fall at the same point of
            # beat's 10 s reconcile cycle every time (kill → heal → settle would otherwise lock onto it).
            time.sleep(SETTLE_S + self.random.uniform(0, BEAT_RECONCILE_S))
        return rows

    # --- the series: random replicas of one 3-replica app ---

    def deploy_replicated_app(self) -> tuple:
        """A new app, v1 with the default minimum ready time, scaled to REPLICAS web replicas, deployed by the
        running worker (its release and scale deployments, as a user's `POST …/releases/` and scale would be):
        v1 goes live just before the kills."""
        from berth.deployments.services import formation_scale

        app = self.app_create(actor=self.owner, organization=self.organization, name="replicated")
        _, release_deployment = self.release_create(actor=self.owner, app=app, image=IMAGE, process_types=WEB)
        scale = formation_scale(actor=self.owner, app=app, changes={"web": {"quantity": REPLICAS}})
        for deployment in (release_deployment, scale):
            if deployment is not None and _wait_finished(deployment).state != "succeeded":
                raise RuntimeError(f"deploying the replicated app: {deployment.kind} {deployment.state}")
        release_deployment.refresh_from_db()
        return app, release_deployment

    def replica_series(self, app) -> list[dict]:
        """KILLS kills of a replica chosen at random (seeded) among the app's healthy ones, on their own schedule:
        each 1 s plus a random 0 to 10 s after the previous kill, whether or not its replacement is healthy yet,
        as crashes would come. Then wait for every killed slot's replacement, and read what Berth did."""
        from berth.deployments.models import Deployment
        from berth.fleet.models import Container

        rng = random.Random(REPLICA_SEED)
        kills = []
        next_at = time.monotonic()
        for n in range(self.kills):
            time.sleep(max(0.0, next_at - time.monotonic()))
            self.processes.check()
            deadline = time.monotonic() + 60
            while not (
                candidates := list(
                    Container.objects.filter(
                        app=app, state=Container.State.RUNNING, health=Container.Health.HEALTHY
                    ).order_by("process_type", "index")
                )
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kill {n + 1}: no healthy replica of {app.name} to kill for 60 s")
                time.sleep(0.1)
            victim = rng.choice(candidates)
            began = time.time()
            self.clients[victim.host_id].kill(victim.docker_id)
            kills.append({"n": n + 1, "victim": victim.pk, "killed_at": began, "healthy_replicas": len(candidates)})
            next_at = time.monotonic() + SETTLE_S + rng.uniform(0, BEAT_RECONCILE_S)
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while time.monotonic() < deadline:
            done = all(self._replacement(app, k) is not None for k in kills)
            if done and not app.deployments.filter(state__in=Deployment.UNFINISHED).exists():
                break
            time.sleep(0.2)
        return [self._replica_row(app, k) for k in kills]

    @staticmethod
    def _replacement(app, kill: dict):
        """The first container of the killed slot created after the kill, once healthy; None before."""
        from berth.fleet.models import Container

        victim = Container.objects.get(pk=kill["victim"])
        first = (
            Container.objects.filter(
                app=app,
                process_type=victim.process_type,
                index=victim.index,
                created_at__gte=datetime.fromtimestamp(kill["killed_at"], UTC),
            )
            .order_by("created_at", "id")
            .first()
        )
        return first if first is not None and first.healthy_at is not None else None

    def _replica_row(self, app, kill: dict) -> dict:
        from berth.deployments.models import Deployment, DeploymentStep
        from berth.fleet.models import Container
        from worker.healing import CRASH_WINDOW, Crash, slot_wait_s

        began = kill["killed_at"]
        victim = Container.objects.select_related("host").get(pk=kill["victim"])
        slot = f"{victim.process_type}.{victim.index}"
        row = {"n": kill["n"], "slot": slot, "killed_at": began, "healthy_replicas_at_kill": kill["healthy_replicas"]}
        row["victim_up_s"] = (began - victim.started_at.timestamp()) if victim.started_at else None
        row["victim_healthy_s"] = (began - victim.healthy_at.timestamp()) if victim.healthy_at else None
        # The slot's back-off by design: worker.healing.slot_wait_s over the slot's crashes (how long each had
        # been healthy when it exited) as they stood when the victim exited (the same query as Berth's, up to then).
        if victim.finished_at is not None:
            crashes = [
                Crash(healthy, finished)
                for healthy, finished in Container.objects.filter(
                    app=app,
                    release_id=victim.release_id,
                    process_type=victim.process_type,
                    index=victim.index,
                    state=Container.State.EXITED,
                    finished_at__lte=victim.finished_at,
                    finished_at__gte=victim.finished_at - CRASH_WINDOW,
                )
                .order_by("-finished_at")
                .values_list("healthy_at", "finished_at")
            ]
            row["backoff_s"] = slot_wait_s(crashes, victim.finished_at)
        else:
            row["backoff_s"] = None
        at_kill = datetime.fromtimestamp(began, UTC)
        running = app.deployments.filter(created_at__lte=at_kill).exclude(finished_at__lt=at_kill)
        row["deployments_under_way_at_kill"] = [f"{d.kind}#{d.pk}" for d in running]
        row.update(self._docker_timeline(victim, began))
        replacement = self._replacement(app, kill)
        if replacement is None:
            return {**row, "total": None, "timed_out": True}
        healthy_step = (
            DeploymentStep.objects.filter(container=replacement, message__contains=" is healthy (")
            .order_by("at")
            .first()
        )
        heal = Deployment.objects.filter(pk=replacement.deployment_id).first()
        healthy_at = healthy_step.at.timestamp() if healthy_step else replacement.healthy_at.timestamp()
        created = heal.created_at.timestamp() if heal else None
        row.update(
            {
                "total": healthy_at - began,
                "healthy_from_step": healthy_step is not None,
                "replacement": replacement.name,
                "replacement_created": replacement.created_at.timestamp() - began,
                "heal": f"{heal.kind}#{heal.pk}" if heal else None,
                "heal_created_at": created,
                "noticed": (created - began) if created else None,
                "heal_created_before_kill": created is not None and created < began,
                "heal_slots_replaced": heal.containers.count() if heal else None,
                "heal_attempts": heal.attempts if heal else None,
            }
        )
        # Deployments of the app that began between the kill and the one that replaced the slot: a kill can come
        # just before a heal of another slot starts, which then runs while the victim's exit is recorded.
        if heal is not None:
            others = app.deployments.filter(created_at__gte=at_kill, created_at__lt=heal.created_at).exclude(pk=heal.pk)
            row["deployments_begun_before_its_heal"] = [f"{d.kind}#{d.pk}" for d in others.order_by("id")]
        # Beyond its back-off, how long the slot stayed empty; when the heal came late (noticed more than 0.6 s
        # after the back-off, or the slot empty more than 1 s beyond it), the app's deployment steps as evidence.
        row["beyond_backoff_s"] = row["total"] - (row["backoff_s"] or 0.0)
        late = row["noticed"] is not None and row["noticed"] - (row["backoff_s"] or 0.0) > 0.6
        if late or row["beyond_backoff_s"] > 1.0:
            heals = app.deployments.filter(
                created_at__gte=at_kill - timedelta(seconds=10), created_at__lte=replacement.created_at
            ).order_by("id")
            row["evidence"] = [
                f"{step.at.timestamp() - began:+.3f} {d.kind}#{d.pk}: {step.message}"
                for d in heals
                for step in d.steps.order_by("at", "id")
            ]
        return row

    # --- the run ---

    def start_berth(self) -> None:
        bench.broker_flush()  # the deploy messages of the setup: already run in this process
        self.processes.start_worker(beat=True)

    def start_events_watcher(self) -> None:
        """`python -m worker.events`, waited for until it follows every host's event stream: a kill before
        that would be seen by the periodic pass only (on a loaded machine its start can take seconds)."""
        self.processes.start("events", [sys.executable, "-m", "worker.events"], BERTH_LOG_LEVEL="INFO")
        log = bench.OUT / f"{NAME}-events.log"  # where BerthProcesses writes the role's output
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("following the events of") < len(self.host_rows):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the events watcher did not follow every host within 60 s; see {log}")
            self.processes.check()
            time.sleep(0.1)

    def measure(self) -> dict:
        setup_began = time.monotonic()
        apps = {mode: self.deploy_apps(mode[0], self.kills) for mode in self.modes}
        repeat_app = self.deploy_apps("r", 1)[0]
        setup_s = time.monotonic() - setup_began
        samples: dict[str, list[dict]] = {}
        replicas: dict = {}
        periodic = None
        try:
            self.start_berth()
            for mode in self.modes:
                if mode == "events":
                    self.start_events_watcher()
                if mode == self.modes[0]:
                    app, release_deployment = self.deploy_replicated_app()
                    replicas = {"mode": mode, "app": app, "live_since": release_deployment.finished_at.timestamp()}
                    replicas["rows"] = self.replica_series(app)
                if mode != "events":
                    periodic = PeriodicReconciler([row.pk for row in self.host_rows])
                    periodic.start()
                samples[mode] = self.kill_series(apps[mode])
                samples[f"{mode}_repeated_kills_of_one_app"] = (
                    self.kill_series([repeat_app] * self.repeats) if mode == self.modes[0] else []
                )
                if mode == "events":
                    self.processes.stop("events")
                else:
                    periodic.stopping.set()
                    periodic.join(timeout=30)
        finally:
            if periodic is not None:
                periodic.stopping.set()
            self.processes.stop_all()
            for client in self.clients.values():
                client.close()
            for recorder in self.recorders.values():
                recorder.close()
        worker_log = bench.OUT / f"{NAME}-worker.log"
        received = _worker_tasks_received(worker_log)
        for mode, rows in samples.items():
            for row in rows:
                row.update(_wake_story(row, received, worker_heals=not mode.startswith("periodic")))
        figures = self.figures(samples, setup_s, periodic)
        if replicas:
            for row in replicas["rows"]:
                row.update(_wake_story(row, received, worker_heals=replicas["mode"] != "periodic"))
            figures.update(self.replica_figures(replicas, worker_log))
            figures["samples"]["replicas"] = [
                {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if not k.endswith("_at")}
                for row in replicas["rows"]
            ]
        return figures

    def replica_figures(self, replicas: dict, worker_log: Path) -> dict:
        """The issue's series: p50/p90/p99/max from the kill to the replacement's "is healthy" step, the kills
        whose slot was backing off, and what the worker said about crash loops (v1 is the app's only release)."""
        from django.conf import settings

        rows, app = replicas["rows"], replicas["app"]
        done = [r for r in rows if r["total"] is not None]
        backing_off = [r for r in done if r["backoff_s"]]
        log = worker_log.read_text(errors="replace") if worker_log.exists() else ""
        loop_lines = [line for line in log.splitlines() if f"app {app.pk}: " in line]
        name = "replicas"
        figures = {
            f"{name}_mode": replicas["mode"],
            f"{name}_replicas": REPLICAS,
            f"{name}_kills": len(rows),
            f"{name}_timed_out": len(rows) - len(done),
            f"{name}_total_s": bench.summary([r["total"] for r in done]),
            f"{name}_meets_target": len(done) == len(rows)
            and bench.percentile([r["total"] for r in done], 99) <= TARGET_P99_S,
            f"{name}_backoff_reset_s": settings.BERTH_BACKOFF_RESET_SECONDS,
            f"{name}_kills_with_backoff": len(backing_off),
            f"{name}_backoffs_s": [round(r["backoff_s"], 3) for r in backing_off],
            f"{name}_total_s_without_backoff": bench.summary([r["total"] for r in done if not r["backoff_s"]]),
            f"{name}_beyond_backoff_s": bench.summary([r["beyond_backoff_s"] for r in done]),
            f"{name}_beyond_backoff_over_2s": sum(1 for r in done if r["beyond_backoff_s"] > 2.0),
            f"{name}_kills_during_a_deployment": sum(1 for r in rows if r["deployments_under_way_at_kill"]),
            f"{name}_kills_with_another_deployment_begun_before_its_heal": sum(
                1 for r in rows if r.get("deployments_begun_before_its_heal")
            ),
            f"{name}_heals_replacing_several_slots": sum(1 for r in done if (r["heal_slots_replaced"] or 0) > 1),
            f"{name}_not_healthy_by_its_step": sum(1 for r in done if not r["healthy_from_step"]),
            f"{name}_crash_loop": {
                "crashes": settings.BERTH_CRASH_LOOP_CRASHES,
                "within_s": settings.BERTH_CRASH_LOOP_SECONDS,
                "kills_within_window": sum(
                    1 for r in rows if r["killed_at"] - replicas["live_since"] <= settings.BERTH_CRASH_LOOP_SECONDS
                ),
                "no_earlier_release_ran_stably": sum(
                    1 for line in loop_lines if "no earlier release ran stably" in line
                ),
                "rolled_back": sum(1 for line in loop_lines if "rolling back" in line),
                "first_worker_log_line": loop_lines[0][:300] if loop_lines else None,
                "releases": app.releases.count(),
                "heal_deployments": app.deployments.filter(kind="heal").count(),
                "rollback_deployments": app.deployments.exclude(kind__in=("heal", "release", "scale")).count(),
            },
        }
        creators = [r["heal_created_by"] for r in done if "heal_created_by" in r]
        if creators:
            figures[f"{name}_heal_created_by"] = {c: creators.count(c) for c in sorted(set(creators))}
        return figures

    def figures(self, samples: dict, setup_s: float, periodic) -> dict:
        figures = {
            "modes": self.modes,
            "kills_per_mode": self.kills,
            "events_watcher": "worker/events.py (python -m worker.events)" if "events" in self.modes else "absent",
            "periodic_interval_s": PERIODIC_S,
            "target_p99_s": TARGET_P99_S,
            "setup_s": round(setup_s, 1),
        }
        for name, rows in samples.items():
            if not rows:
                continue
            done = [r for r in rows if r["total"] is not None]
            timed_out = len(rows) - len(done)
            figures[f"{name}_total_s"] = bench.summary([r["total"] for r in done])
            figures[f"{name}_timed_out"] = timed_out
            if done:
                figures[f"{name}_phases_p50_s"] = {
                    key: round(bench.percentile([r[key] for r in done if r[key] is not None], 50), 3)
                    for key in ("noticed", "picked_up", "placement", "start", "health_wait", "kill_event", "die_event")
                    if any(r[key] is not None for r in done)
                }
                # A heal deployment created more than 2 s after the kill was not started by that kill's wake-up.
                figures[f"{name}_noticed_after_2s"] = sum(1 for r in done if (r["noticed"] or 0) > 2.0)
                figures[f"{name}_not_replaced_by_its_deploy"] = sum(1 for r in done if not r["replaced_by_its_deploy"])
                creators = [r["heal_created_by"] for r in done if "heal_created_by" in r]
                if creators:
                    figures[f"{name}_heal_created_by"] = {c: creators.count(c) for c in sorted(set(creators))}
            if not name.endswith("_of_one_app") and done:
                p99 = bench.percentile([r["total"] for r in done], 99) if not timed_out else None
                figures[f"{name}_meets_target"] = p99 is not None and p99 <= TARGET_P99_S
        if periodic is not None:
            figures["periodic_passes"] = periodic.passes
            figures["periodic_errors"] = periodic.errors[:5]
        figures["samples"] = {
            name: [
                {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if not k.endswith("_at")}
                for row in rows
            ]
            for name, rows in samples.items()
        }
        return figures


def _wait_finished(deployment, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if deployment.state in ("succeeded", "failed"):
            return deployment
        time.sleep(0.2)
    raise RuntimeError(f"deployment {deployment.pk} still {deployment.state} after {timeout_s} s")


WAKING_TASKS = ("berth.fleet.reconcile_host", "berth.fleet.reconcile", "berth.fleet.reconcile_app", "berth.fleet.probe")
# The tasks that create heal deployments for an exited container (probe only does for one that fails its
# health check `retries` times, 5 s apart, which a killed container never reaches before being replaced).
HEALING_TASKS = ("berth.fleet.reconcile_host", "berth.fleet.reconcile", "berth.fleet.reconcile_app")
_RECEIVED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task ([\w.]+)\[[^\]]+\] received"
)


def _worker_tasks_received(log: Path) -> list[tuple[float, str]]:
    """(time, task name) of every task the worker received, from its log (local time, millisecond stamps)."""
    received = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        match = _RECEIVED.match(line)
        if match:
            stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").astimezone()
            received.append((stamp.timestamp(), match[2]))
    return received


def _wake_story(row: dict, received: list[tuple[float, str]], *, worker_heals: bool) -> dict:
    """What the worker was sent right after the kill, and which task it had received last before the heal
    deployment was created (the heal is created inside a reconcile task's run, so that task made it)."""
    killed, created = row.get("killed_at"), row.get("heal_created_at")
    if killed is None:
        return {}
    woken = [name.rsplit(".", 1)[1] for at, name in received if killed <= at <= killed + 0.5 and name in WAKING_TASKS]
    story = {"worker_tasks_within_0.5s_of_kill": woken}
    if worker_heals and created is not None:
        before = [(at, name) for at, name in received if at <= created and name in HEALING_TASKS]
        if before:
            at, name = before[-1]
            story["heal_created_by"] = name.rsplit(".", 1)[1]
            story["heal_created_after_that_task_received_s"] = round(created - at, 3)
    return story


def measure(kills: int, repeats: int) -> dict:
    bench.django_setup()
    return Measure(kills, repeats).measure()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2]), int(sys.argv[3])))
