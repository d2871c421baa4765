"""One-off runs and release commands: one container, its command, and its end (docs/runs.md).

A run (deployments.Run) is claimed by one worker, which places it like any container, starts it from the
release's image and config with the hardened spec every container has (containers.container_spec), waits
for it to exit or for its timeout (then stops it: SIGTERM, SIGKILL 10 s later), stores its last output
lines, removes it and records its exit code. Its container row (process type `run`, index the run's id) is
billed from the host's StartedAt to its FinishedAt, like any other.

A worker that dies mid-run leaves the run `running` with a heartbeat that goes stale: the periodic sweep
sends it again, and the worker that takes it over finds the same container (its name is chosen, and
recorded, before it is created) and waits for it, or records that it went away. The timeout runs from the
container's start, so taking a run over never extends it.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from berth.applications.models import Formation, Release
from berth.applications.specs import RUN_PROCESS_TYPE, HealthCheck, ProcessType
from berth.deployments.models import Deployment, Run
from berth.fleet import transitions
from berth.fleet.models import Container, DockerHost, Size
from berth.logs import store
from berth.logs.lines import APP

from .containers import STOP_TIMEOUT_S, container_spec
from .engine import DOCKER_ENDED, Engine, EngineError, ObservedContainer
from .logs import flush_container_logs
from .placement import PlacementError
from .runtime import DeployFailed, choose_hosts, heartbeat, prepare_host, step, worker_name

logger = logging.getLogger(__name__)

# A run is looked at this often while it runs (and its heartbeat written at most once a second).
POLL_S = 0.25
HEARTBEAT_EVERY_S = 1.0
# How many of its last lines a failed release command shows in its deployment's reason.
REASON_LINES = 10


def run_process(run: Run) -> ProcessType:
    """What a run's container is, as the process type container_spec builds from: the run's command, no
    port, no health check; a read-only root when any process type of its release has one."""
    return ProcessType(
        name=RUN_PROCESS_TYPE,
        command=tuple(run.command),
        port=None,
        health=HealthCheck(type="none"),
        min_ready_s=0.0,
        read_only=any(process.read_only for process in run.release.processes.values()),
    )


def claim(run_id: int, *, owned: bool = False) -> Run | None:
    """Take a run for this worker: a queued one, or a running one whose worker stopped proving it is
    alive. `owned`: the caller owns it whatever its heartbeat says (a deployment, under the app's lock,
    taking its own release command over). None when it is not this worker's to run."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.BERTH_RUN_STALE_SECONDS)
    takeable = Q(state=Run.State.QUEUED) | Q(state=Run.State.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True) | Q(pk__in=[run_id] if owned else [])
    )
    claimed = (
        Run.objects.filter(pk=run_id)
        .filter(takeable)
        .update(state=Run.State.RUNNING, claimed_by=worker_name(), heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return Run.objects.select_related("app__organization", "release", "size", "host", "container").get(pk=run_id)


def run_once(run_id: int) -> None:
    """The task's work: claim the run and carry it out to its end."""
    run = claim(run_id)
    if run is not None:
        execute(run)


def execute(run: Run, *, alive: Callable[[], None] | None = None) -> Run:
    """Carry a claimed run out: start its container (or find the one a worker before this one started),
    wait for its end or its timeout, and record it. `alive` is called while it waits (a deployment's
    heartbeat). Returns the run as it ended."""
    run.release.app = run.app
    try:
        container = _resume(run) if run.container_name else None
        if container is None and not run.finished:
            container = _start(run)
    except (DeployFailed, EngineError, PlacementError) as error:
        return _finish(run, Run.State.LOST, error=f"It could not start: {error}")
    if run.finished or container is None:  # found gone by _resume
        return run
    return _wait(run, container, alive)


def _say(run: Run, text: str) -> None:
    store.say(run.app_id, run.process, text, process_type=RUN_PROCESS_TYPE)


def _start(run: Run) -> Container:
    process = run_process(run)
    release, size = run.release, run.size
    host = run.host or choose_hosts(release=release, process=process, size=size, count=1)[0].host
    name = f"{run.app.organization.slug}.{run.app.name}.run.{run.pk}.v{release.version}"
    _note(run, host=host, container_name=name)  # before the create: a worker taking the run over looks for it
    _say(run, f"Starting {_shown(run.command)} on v{release.version} ({size.name}, at most {run.timeout_s} s).")
    image = prepare_host(host, release)
    _note(run, heartbeat_at=timezone.now())  # a pull may have taken a while: this worker is still alive
    spec = container_spec(
        release=release,
        process=process,
        index=run.pk,
        size=size,
        host=host,
        deployment_id=run.deployment_id,
        image_user=image.user,
    )
    spec["name"] = name
    with Engine(host) as engine:
        docker_id = engine.run(spec)
        observed = engine.inspect(docker_id)
    return _recorded(run, docker_id, image.digest, observed)


def _recorded(run: Run, docker_id: str, digest: str, observed: ObservedContainer | None) -> Container:
    """The run's container row (billed from now on), and the run's start."""
    container = transitions.container_run_started(
        host=cast(DockerHost, run.host),  # chosen before any container exists
        docker_id=docker_id,
        name=run.container_name,
        release=run.release,
        deployment=run.deployment,
        run_id=run.pk,
        size=run.size,
        image_digest=digest,
        observed=observed,
    )
    _note(run, container=container, started_at=observed.started_at if observed else None)
    return container


def _resume(run: Run) -> Container | None:
    """A run a worker before this one started: its container, recorded if that worker did not live to;
    None when none was created (the run starts now). A container that went away ends the run as lost."""
    with Engine(cast(DockerHost, run.host)) as engine:  # recorded with the container's name
        observed = engine.inspect(run.container.docker_id if run.container else run.container_name)
    if observed is None:
        if run.container is None:
            return None
        transitions.containers_lost([run.container], removed_at=timezone.now())
        _finish(run, Run.State.LOST, error="Its container went away while no worker watched it.")
        return None
    if run.container is not None:
        return run.container
    return _recorded(run, observed.docker_id, "", observed)


def _wait(run: Run, container: Container, alive: Callable[[], None] | None) -> Run:
    """Wait for the run's container to end, or stop it at its timeout; then store its last lines, remove it
    and record how it ended."""
    started = run.started_at or container.started_at or timezone.now()
    deadline = started + timedelta(seconds=run.timeout_s)
    timed_out = False
    beat = 0.0
    try:
        with Engine(container.host) as engine:
            while True:
                observed = engine.inspect(container.docker_id)
                if observed is None or observed.state in DOCKER_ENDED:
                    break
                if timezone.now() >= deadline:
                    timed_out = True
                    _say(
                        run,
                        f"Timed out after {run.timeout_s} s: stopping it (SIGTERM, SIGKILL {STOP_TIMEOUT_S} s later).",
                    )
                    engine.stop(container.docker_id, timeout_s=STOP_TIMEOUT_S)
                    observed = engine.inspect(container.docker_id)
                    break
                if time.monotonic() - beat >= HEARTBEAT_EVERY_S:
                    beat = time.monotonic()
                    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
                    if alive is not None:
                        alive()
                time.sleep(POLL_S)
            flush_container_logs(engine, container.docker_id, run.app_id, run.process, RUN_PROCESS_TYPE)
            engine.remove(container.docker_id)
    except EngineError as error:
        # The host went away: the container is lost with it (the reconciler removes it if it answers again).
        transitions.containers_lost([container])
        return _finish(run, Run.State.LOST, error=f"Its host stopped answering: {error}")
    transitions.container_removed(container, observed)
    if observed is None:
        return _finish(run, Run.State.LOST, error="Its container went away while it ran.")
    state = Run.State.TIMED_OUT if timed_out else Run.State.SUCCEEDED if observed.exit_code == 0 else Run.State.FAILED
    return _finish(run, state, exit_code=observed.exit_code, finished_at=observed.finished_at)


def _finish(
    run: Run, state: str, *, exit_code: int | None = None, finished_at: datetime | None = None, error: str = ""
) -> Run:
    _note(run, state=state, exit_code=exit_code, finished_at=finished_at or timezone.now(), error=error)
    if state == Run.State.TIMED_OUT:
        _say(run, f"Killed at its timeout of {run.timeout_s} s (exit code {exit_code}).")
    elif state == Run.State.LOST:
        _say(run, error)
    else:
        _say(run, f"Exited with code {exit_code}.")
    return run


def _note(run: Run, **changes: Any) -> None:
    """Write changes to the run's row and to the caller's copy of it."""
    Run.objects.filter(pk=run.pk).update(**changes)
    for name, value in changes.items():
        setattr(run, name, value)


def _shown(command: list[str]) -> str:
    text = " ".join(command)
    return text if len(text) <= 200 else f"{text[:200]}…"


def stale_runs() -> QuerySet[Run]:
    """One-off runs whose worker stopped proving it is alive, or that were never picked up. A release
    command is its deployment's: the deployment's own sweep takes it over."""
    stale = timezone.now() - timedelta(seconds=settings.BERTH_RUN_STALE_SECONDS)
    return Run.objects.filter(kind=Run.Kind.RUN).filter(
        Q(state=Run.State.RUNNING, heartbeat_at__lt=stale) | Q(state=Run.State.QUEUED, created_at__lt=stale)
    )


# --- the release command ------------------------------------------------------------------------


def release_phase(deployment: Deployment, release: Release) -> str | None:
    """Run the release's release command once, before any container of it serves: None when it succeeded
    (now, or in an earlier deployment of this release) or there is none; else why the deployment fails,
    with the command's last output lines. A deployment taken over after its worker died takes its release
    command over too (the same container), rather than run it twice."""
    spec = release.release_command
    if not spec or deployment.app.current_release_id == release.pk:
        return None
    if Run.objects.filter(release=release, kind=Run.Kind.RELEASE, state=Run.State.SUCCEEDED).exists():
        return None
    run = Run.objects.filter(deployment=deployment, kind=Run.Kind.RELEASE, state__in=Run.UNFINISHED).first()
    if run is None:
        run = Run.objects.create(
            app=deployment.app,
            release=release,
            kind=Run.Kind.RELEASE,
            deployment=deployment,
            command=spec["command"],
            size=_release_size(deployment),
            timeout_s=spec["timeout_s"],
        )
    step(
        deployment,
        f"Running the release command of v{release.version} ({run.process}, at most {run.timeout_s} s): "
        f"{_shown(run.command)}",
    )
    claimed = claim(run.pk, owned=True)
    if claimed is None:  # finished meanwhile (only a run that ended is not takeable)
        claimed = Run.objects.select_related("app__organization", "release", "size", "host", "container").get(pk=run.pk)
    else:
        claimed = execute(claimed, alive=lambda: heartbeat(deployment))
    if claimed.state == Run.State.SUCCEEDED:
        step(deployment, "The release command succeeded (exit code 0).")
        return None
    return f"the release command {_ended(claimed)}{_last_lines(claimed)}"


def _release_size(deployment: Deployment) -> Size:
    """The largest size the app's formation uses (a migration may need what its processes need), else the
    default size."""
    formation = Formation.objects.filter(app=deployment.app).select_related("size").order_by("-size__memory_mb")
    chosen = next((f.size for f in formation), None)
    chosen = chosen or Size.objects.filter(is_default=True).first() or Size.objects.order_by("memory_mb").first()
    if chosen is None:
        raise DeployFailed("No container sizes are defined yet; an operator must add one.")
    return chosen


def _ended(run: Run) -> str:
    if run.state == Run.State.TIMED_OUT:
        return f"was killed at its timeout of {run.timeout_s} s"
    if run.state == Run.State.FAILED:
        return f"exited with code {run.exit_code}"
    return f"did not finish: {run.error or run.get_state_display()}"


def _last_lines(run: Run) -> str:
    try:
        lines = store.recent(run.app_id, lines=REASON_LINES, where=store.Filter(process=run.process, source=APP))
    except redis.RedisError:
        return ""
    if not lines:
        return ""
    return "; its last output:\n" + "\n".join(line.text for line in lines)
