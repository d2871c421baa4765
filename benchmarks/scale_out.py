"""Scale-out 0 → 30 replicas across the test bed's hosts, against 30 raw `docker run`s in parallel.

Berth's issue: "scale-out 0 → 30 replicas across the 2 hosts (formation_scale then run deployments;
a 64 MB size with enough host memory_mb), versus 30 raw `docker run`s in parallel (split across both
hosts) until all answer HTTP; target ≤ 1.5 x raw." Series, interleaved, REPETITIONS of each:

- raw_parallel: 30 threads released together, each `docker -H <host> run -d -p <address>:<port>:8080
  --memory 64m berth-test/web:v1` on alternate hosts, then GET /cgi-bin/health every 10 ms until 200;
  the figure is the last container's first answer.
- berth: `formation_scale(web=30)` on an app whose v1 runs 0 replicas, then, in the same thread,
  `worker.deploy.run_app_deployments` (the deploy task's code) until the deployment has finished;
  the figure is the last replica's "is healthy" step (the run's return is reported too).
- raw_sequential (once): the 30 runs one after the other, each waited for, which is the shape of
  Berth's rollout (start one, wait until healthy, next), so the two can be compared.
- berth_runtime (RUNTIME_REPETITIONS, last): Berth as the Procfile runs it, a real Celery worker
  (`--concurrency 2`) running the deployment while beat sends its periodic tasks (reconcile every
  10 s, probes and host checks every 5 s); `formation_scale(web=30)`, then this process only watches
  the database until 30 replicas are healthy and the deployment has finished (or RUNTIME_TIMEOUT_S).
  A failed or stuck deployment is recorded, not raised: see the README on the adoption race.

After each in-process scale-out every replica must answer GET /cgi-bin/health with 200, and the
spread over hosts is recorded; the scale-in back to 0 is timed too.
"""

import random
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import _deploybench as bench  # benchmarks/ is sys.path[0] both under run.py and as a script
import _server

NAME = "scale_out"
ORG = "bench-scale"
DATABASE = "berth_bench_scale"
IMAGE = "berth-test/web:v1"
HEALTH_PATH = "/cgi-bin/health"
REPLICAS = 30
REPETITIONS = 3
RUNTIME_REPETITIONS = 2
RUNTIME_TIMEOUT_S = 240.0
HOST_MEMORY_MB = 4096  # 30 x 64 MB = 1,920 MB fits on either host alone: placement never runs out
SIZE = ("bench-64", 64, 250)
WEB = {
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": HEALTH_PATH, "interval_s": 0.3, "retries": 3, "start_period_s": 3},
    }
}


def run(
    *, repetitions: int = REPETITIONS, replicas: int = REPLICAS, runtime_repetitions: int = RUNTIME_REPETITIONS
) -> dict:
    runner = bench.Benchmark(NAME, __file__, org_slug=ORG, database=DATABASE, timeout_s=2400)
    # The runtime series runs Berth's reconciler, which must have the hosts to itself.
    args = [str(repetitions), str(replicas), str(runtime_repetitions)]
    return runner.run(args, exclusive_hosts=runtime_repetitions > 0)


# --- the measuring child ------------------------------------------------------------------------


class Measure:
    def __init__(self, repetitions: int, replicas: int, runtime_repetitions: int):
        from berth.applications.services import app_create
        from berth.deployments.services import formation_scale, release_create

        self.repetitions, self.replicas, self.runtime_repetitions = repetitions, replicas, runtime_repetitions
        self.formation_scale = formation_scale
        self.hosts = bench.bench_hosts()
        self.host_rows = bench.register_fleet(self.hosts, memory_mb=HOST_MEMORY_MB)
        bench.size_create(*SIZE)
        self.owner, organization = bench.bench_tenant(ORG)
        self.app = app_create(actor=self.owner, organization=organization, name="scale")
        release_create(actor=self.owner, app=self.app, image=IMAGE, process_types=WEB)
        self.used_ports: set[int] = set()
        self.samples: dict[str, list[dict]] = {
            "raw_parallel": [],
            "berth": [],
            "raw_sequential": [],
            "berth_runtime": [],
        }

    # --- raw ---

    def _port(self) -> int:
        port = random.choice([p for p in range(20000, 30000) if p not in self.used_ports])
        self.used_ports.add(port)
        return port

    def _raw_one(self, host: bench.BenchHost, start: threading.Barrier | None) -> dict:
        name = f"{ORG}-raw-{secrets.token_hex(4)}"
        port = self._port()
        command = [
            *("docker", "-H", host.engine_url, "run", "-d", "--name", name, "--label", f"berth-bench={ORG}"),
            *("-p", f"{host.address}:{port}:8080", "--memory", f"{SIZE[1]}m", IMAGE),
        ]
        if start is not None:
            start.wait()
        began = time.time()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"docker run on {host.name} failed: {done.stderr[-500:]}")
        returned = time.time()
        answered = _server.wait_http(host.address, port, HEALTH_PATH, timeout_s=60, interval_s=0.01)
        if answered is None:
            raise RuntimeError(f"{name} on {host.name}:{port} never answered")
        return {"began": began, "cli_returned": returned, "answered": answered, "host": host.name}

    def raw_parallel(self) -> dict:
        start = threading.Barrier(self.replicas + 1, timeout=60)
        with ThreadPoolExecutor(self.replicas) as pool:
            futures = [pool.submit(self._raw_one, self.hosts[i % len(self.hosts)], start) for i in range(self.replicas)]
            start.wait()
            began = time.time()
            rows = [future.result() for future in futures]
        self._raw_remove()
        return {
            "total": max(r["answered"] for r in rows) - began,
            "first_answer": min(r["answered"] for r in rows) - began,
            "last_cli_returned": max(r["cli_returned"] for r in rows) - began,
            "per_container_p50": bench.percentile([r["answered"] - r["began"] for r in rows], 50),
        }

    def raw_sequential(self) -> dict:
        began = time.time()
        rows = [self._raw_one(self.hosts[i % len(self.hosts)], None) for i in range(self.replicas)]
        total = rows[-1]["answered"] - began
        self._raw_remove()
        return {"total": total, "per_container_p50": bench.percentile([r["answered"] - r["began"] for r in rows], 50)}

    def _raw_remove(self) -> None:
        bench.remove_ours(self.hosts, ORG)

    # --- Berth ---

    def _scale(self, quantity: int):
        from worker.deploy import run_app_deployments

        began = time.time()
        deployment = self.formation_scale(actor=self.owner, app=self.app, changes={"web": {"quantity": quantity}})
        called = time.time()
        run_app_deployments(self.app.pk)
        returned = time.time()
        deployment.refresh_from_db()
        if deployment.state != "succeeded":
            raise RuntimeError(f"scale to {quantity}: deployment {deployment.state}: {deployment.error}")
        return deployment, began, called, returned

    def warm_up(self) -> dict:
        """v1 once, then 2 replicas (one per host: both hosts get the organization's network), then none."""
        from worker.deploy import run_app_deployments

        run_app_deployments(self.app.pk)
        _, began, _, returned = self._scale(len(self.hosts))
        two = returned - began
        self._scale(0)
        return {"scale_0_to_2_s": round(two, 3)}

    def berth(self) -> dict:
        from berth.fleet.models import Container

        deployment, began, called, returned = self._scale(self.replicas)
        steps = list(deployment.steps.order_by("at", "id").values_list("message", "at"))
        healthy = [at.timestamp() for message, at in steps if " is healthy (" in message]
        placed = [at.timestamp() for message, at in steps if message.startswith("Starting ")]
        started = [at.timestamp() for message, at in steps if message.startswith("Started ")]
        live = list(Container.objects.filter(app=self.app, state__in=Container.LIVE).select_related("host"))
        spread = {}
        for container in live:
            spread[container.host.name] = spread.get(container.host.name, 0) + 1
        answers = sum(
            _server.http_ok(c.host.address, c.published_port, HEALTH_PATH, timeout=5)
            for c in live
            if c.health == Container.Health.HEALTHY
        )
        if len(healthy) != self.replicas or answers != self.replicas:
            raise RuntimeError(f"{len(healthy)} healthy steps, {answers} of {len(live)} replicas answer")
        claimed = deployment.started_at.timestamp()
        sample = {
            "total": max(healthy) - began,
            "formation_scale_call": called - began,
            "claim": claimed - called,
            "first_healthy": min(healthy) - began,
            "run_returned": returned - began,
            # Per replica, from the steps: placement (previous replica healthy → Starting), start, health wait.
            "per_replica_placement": _mean([p - h for p, h in zip(placed[1:], healthy[:-1], strict=True)]),
            "per_replica_start": _mean([s - p for s, p in zip(started, placed, strict=True)]),
            "per_replica_health_wait": _mean([h - s for h, s in zip(healthy, started, strict=True)]),
            "per_replica_total": (max(healthy) - min(placed)) / self.replicas,
            "spread": spread,
        }
        _, began, _, returned = self._scale(0)
        sample["scale_in_to_0"] = returned - began
        return sample

    def measure(self) -> dict:
        warm = self.warm_up()
        for rep in range(self.repetitions):
            pair = [("raw_parallel", self.raw_parallel), ("berth", self.berth)]
            for name, once in pair if rep % 2 == 0 else pair[::-1]:
                self.samples[name].append(once())
        self.samples["raw_sequential"].append(self.raw_sequential())
        if self.runtime_repetitions:
            self.runtime_phase()
        return self.figures(warm)

    # --- Berth as it runs: the Celery worker runs the deployment while beat's periodic tasks run too ---

    def runtime_phase(self) -> None:
        bench.broker_flush()  # the in-process series' deploy messages: already run here
        processes = bench.BerthProcesses(NAME)
        try:
            processes.start_worker(beat=True)
            for _ in range(self.runtime_repetitions):
                self.samples["berth_runtime"].append(self.berth_runtime(processes))
        finally:
            processes.stop_all()

    def berth_runtime(self, processes) -> dict:
        """formation_scale(30); the worker deploys. Until all 30 are healthy and the deployment has finished
        (or RUNTIME_TIMEOUT_S); never raises on a failed deployment: that is a result here."""
        from berth.fleet.models import Container

        healthy = Container.objects.filter(app=self.app, state__in=Container.LIVE, health=Container.Health.HEALTHY)
        began = time.time()
        deployment = self.formation_scale(actor=self.owner, app=self.app, changes={"web": {"quantity": self.replicas}})
        all_healthy = self._wait(deployment, lambda: healthy.count() >= self.replicas, processes)
        finished = time.time()
        deployment.refresh_from_db()
        steps = list(deployment.steps.values_list("message", flat=True))
        marks = deployment.steps.values_list("message", "at")
        healthy_steps = [at.timestamp() for message, at in marks if " is healthy (" in message]
        if all_healthy and len(healthy_steps) == self.replicas:
            all_healthy = max(healthy_steps)  # Berth's own time; the poll's is up to 0.25 s late
        sample = {
            "total": (all_healthy - began) if all_healthy else None,
            "deployment_finished": (deployment.finished_at.timestamp() - began) if deployment.finished_at else None,
            "state": deployment.state,
            "attempts": deployment.attempts,
            "resumed": sum(1 for m in steps if m.startswith("Resumed by")),
            "healthy_at_end": healthy.count(),
            "error": deployment.error[:300],
            "waited": finished - began,
        }
        scale_in = self.formation_scale(actor=self.owner, app=self.app, changes={"web": {"quantity": 0}})
        live = Container.objects.filter(app=self.app, state__in=Container.LIVE)
        self._wait(scale_in, lambda: not live.exists(), processes)
        return sample

    def _wait(self, deployment, done, processes) -> float | None:
        """Poll until `done()` and the deployment finished; the time `done()` first held, or None."""
        deadline = time.monotonic() + RUNTIME_TIMEOUT_S
        held = None
        while time.monotonic() < deadline:
            processes.check()
            if held is None and done():
                held = time.time()
            deployment.refresh_from_db()
            if deployment.state in ("succeeded", "failed") and (held is not None or deployment.state == "failed"):
                return held
            time.sleep(0.25)  # light polling: it shares two cores with the deployment it watches
        return held

    def figures(self, warm: dict) -> dict:
        totals = {
            name: [s["total"] for s in rows if s["total"] is not None] for name, rows in self.samples.items() if rows
        }
        berth, raw = totals["berth"], totals["raw_parallel"]
        return {
            "replicas": self.replicas,
            "repetitions": self.repetitions,
            "hosts": [h.name for h in self.hosts],
            "host_memory_mb": HOST_MEMORY_MB,
            "size": dict(zip(("name", "memory_mb", "cpu_millis"), SIZE, strict=True)),
            "warm_up": warm,
            "total_s": {name: bench.summary(values) for name, values in totals.items()},
            "ratio_berth_to_raw_parallel": {
                "p50": round(bench.percentile(berth, 50) / bench.percentile(raw, 50), 2),
                "max": round(max(berth) / max(raw), 2),
            },
            "ratio_berth_to_raw_sequential": round(
                bench.percentile(berth, 50) / bench.percentile(totals["raw_sequential"], 50), 2
            ),
            "berth_phases_s": {
                key: bench.summary([row[key] for row in self.samples["berth"]])
                for key in self.samples["berth"][0]
                if key not in ("total", "spread")
            },
            "raw_parallel_phases_s": {
                key: bench.summary([row[key] for row in self.samples["raw_parallel"]])
                for key in self.samples["raw_parallel"][0]
                if key != "total"
            },
            "samples": {
                name: [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
                for name, rows in self.samples.items()
            },
        }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def measure(repetitions: int, replicas: int, runtime_repetitions: int) -> dict:
    bench.django_setup()
    return Measure(repetitions, replicas, runtime_repetitions).measure()


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    bench.emit(measure(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
