"""Starting, probing and stopping one container, keeping its observed row true to the host."""

import contextlib
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.utils import timezone

from berth.applications.models import App, Release
from berth.applications.registries import PullPolicy, pull_policy
from berth.applications.specs import ProcessType
from berth.deployments.models import Deployment, DeploymentStep
from berth.fleet import transitions
from berth.fleet.models import Container, DockerHost, Size
from berth.fleet.selectors import hosts_with_load
from berth.logs import store as logs_store

from . import logs, routing
from .containers import STOP_TIMEOUT_S, container_spec, network_labels, network_name, runs_as_root
from .engine import DOCKER_ENDED, DOCKER_RUNNING, Engine, EngineError, ImageNotFound, LocalImage, ObservedContainer
from .placement import HostLoad, place_many
from .probes import probe


class DeployFailed(Exception):
    """The deployment cannot go on; the message is the reason shown to the user."""


# A step proves the deployment's worker alive; more than one heartbeat write a second proves nothing more.
HEARTBEAT_EVERY_S = 1.0


def worker_name() -> str:
    """Who claims a deployment or a run: this process, on this machine."""
    return f"{socket.gethostname()}:{os.getpid()}"


def step(deployment: Deployment | None, message: str, **links: Any) -> None:
    steps(deployment, [message], **links)


def steps(deployment: Deployment | None, messages: list[str], **links: Any) -> None:
    """Add timestamped lines to the deployment's story, in one write; each is also a `berth[deploy]` line
    of the app's log."""
    if deployment is not None:
        DeploymentStep.objects.bulk_create(DeploymentStep(deployment=deployment, message=m, **links) for m in messages)
        heartbeat(deployment)
        container = links.get("container")
        for message in messages:
            logs_store.say(deployment.app_id, "deploy", message, process_type=getattr(container, "process_type", ""))


def heartbeat(deployment: Deployment) -> None:
    """Tell the stale-deployment sweep this deployment's worker is alive (at most once a second)."""
    if time.monotonic() - getattr(deployment, "_heartbeat_sent", -HEARTBEAT_EVERY_S) >= HEARTBEAT_EVERY_S:
        Deployment.objects.filter(pk=deployment.pk).update(heartbeat_at=timezone.now())
        heartbeat_written(deployment)


def heartbeat_written(deployment: Deployment) -> None:
    """Note that `heartbeat_at` was just written (by `heartbeat`, or by the claim)."""
    deployment._heartbeat_sent = time.monotonic()


@dataclass(frozen=True)
class Chosen:
    """A host placement picked for a new container, and why (shown as a deployment step)."""

    host: DockerHost
    reason: str


def choose_hosts(*, release: Release, process: ProcessType, size: Size, count: int) -> list[Chosen]:
    """Hosts for `count` new containers of a process type, all placed before any starts."""
    hosts = {
        h.pk: h
        for h in hosts_with_load(
            organization_id=release.app.organization_id,
            app_id=release.app_id,
            process_type=process.name,
            release_id=release.pk,
        )
    }
    loads = [
        HostLoad(
            host_id=h.pk,
            name=h.name,
            memory_mb=h.memory_mb,
            memory_used_mb=h.memory_used_mb,
            same_release=h.same_release,
            same_process_type=h.same_process_type,
            organization_containers=h.organization_containers,
            userns_remap=h.userns_remap,
            recent_failures=h.recent_failures,
        )
        for h in hosts.values()
    ]
    placements = place_many(
        loads,
        size.memory_mb,
        count,
        organization_limit=settings.BERTH_ORG_CONTAINERS_PER_HOST,
        root_image=_image_runs_as_root(release, list(hosts.values())),
    )
    return [Chosen(hosts[p.host_id], p.reason) for p in placements]


def _image_runs_as_root(release: Release, hosts: list[DockerHost], asked: int = 3) -> bool:
    """Whether the release's image runs as root, for placement to prefer hosts that remap user namespaces.
    Asked of (at most `asked`) hosts only when those that may take it differ in remapping, since the
    answer changes nothing otherwise; False when none holds the image yet. Only a preference: on a host
    that does not remap, start_container runs a root image as an unprivileged user whatever was guessed."""
    if len({h.userns_remap for h in hosts}) < 2:
        return False
    for host in hosts[:asked]:
        try:
            with Engine(host, timeout=5) as engine:
                found = engine.local_image(release.image)
        except EngineError:
            continue
        if found is not None:
            return runs_as_root(found.user)
    return False


def prepare_host(host: DockerHost, release: Release) -> LocalImage:
    """Give a host the organization's network and the release's image before containers start on it
    together: two concurrent creations of a network would make two networks of one name."""
    app = release.app
    try:
        with Engine(host) as engine:
            engine.ensure_network(network_name(app.organization_id), network_labels(app.organization))
            return _image(engine, release)
    except EngineError as error:
        raise DeployFailed(str(error)) from None


def _image(engine: Engine, release: Release, policy: PullPolicy | None = None) -> LocalImage:
    policy = policy or pull_policy(release)
    return engine.ensure_image(release.image, auth=policy.login, always_pull=policy.always_pull)


@dataclass(frozen=True)
class Replica:
    """One replica slot to fill: an index of a release's process type, at a size, for a deployment
    (None for none); a canary's slots are apart from the release's."""

    deployment: Deployment | None
    release: Release
    process: ProcessType
    index: int
    size: Size
    canary: bool = False

    @property
    def slot(self) -> str:
        return f"{'canary ' if self.canary else ''}{self.process.name}.{self.index}"


def start_container(replica: Replica, chosen: Chosen, image: LocalImage | None = None) -> Container:
    """Start one container of the replica on the chosen host, probe it once and record it: healthy if
    it answered at once (wait_healthy then has nothing to wait for), starting otherwise.

    `image` is what prepare_host found on the host; without it the image is looked up (or pulled)
    here. The organization's network is not looked up first: Engine.run makes it when it is missing.
    """
    deployment, release, process, index = replica.deployment, replica.release, replica.process, replica.index
    host = chosen.host
    policy = None if image else pull_policy(release)
    # A host that does not remap user namespaces runs a root image as another user, so there the
    # image's user must be known before the create (containers.container_user).
    find_first = policy is not None and (policy.always_pull or not host.userns_remap)

    def spec_for(found: LocalImage | None) -> dict:
        # Unknown only on a remapping host, where a container runs as its image says whatever that is.
        return container_spec(
            release=release,
            process=process,
            index=index,
            size=replica.size,
            host=host,
            deployment_id=deployment.pk if deployment else None,
            image_user=found.user if found else "",
            canary=replica.canary,
        )

    def announce_and_find_image() -> LocalImage:
        step(deployment, f"Starting {replica.slot} of v{release.version} on {chosen.reason}.", host=host)
        found = image or _image_alongside(host, release, policy)
        if not release.image_digest:  # a release records the digest its first container ran
            Release.objects.filter(pk=release.pk, image_digest="").update(image_digest=found.digest)
        return found

    try:
        with Engine(host) as engine:
            if find_first:
                # Pulled before the create, so the registry decides whether this organization may run it.
                image = announce_and_find_image()
                spec = spec_for(image)
                docker_id = engine.run(spec)
            else:
                spec = spec_for(image)
                docker_id, image = _create_and_start(engine, spec, announce_and_find_image)
            observed = engine.inspect(docker_id)
            running = observed is not None and observed.state == DOCKER_RUNNING
            healthy, seen = False, ""
            if running and observed is not None:
                healthy, seen = _probe(process, host, observed.published_port, engine, docker_id)
    except EngineError as error:
        raise DeployFailed(str(error)) from None
    container = transitions.container_started(
        host=host,
        docker_id=docker_id,
        name=spec["name"],
        release=release,
        deployment=deployment,
        process=process,
        index=index,
        size=replica.size,
        image_digest=image.digest,
        observed=observed,
        running=running,
        healthy=healthy,
        canary=replica.canary,
    )
    if healthy:  # it serves from now on; the deployment's story is written after
        routing.join(container, deployment)
    messages = [f"Started {container.name} (port {container.published_port})."]
    if healthy:
        messages.append(f"{container.name} is healthy ({seen}).")
    steps(deployment, messages, host=host, container=container)
    return container


def _image_alongside(host: DockerHost, release: Release, policy: PullPolicy | None) -> LocalImage:
    """The image's id and digest, pulled if need be, over a connection of its own: a create may be
    running on the other."""
    with Engine(host) as engine:
        return _image(engine, release, policy)


def _create_and_start(engine: Engine, spec: dict, meanwhile: Callable[[], LocalImage]) -> tuple[str, LocalImage]:
    """Docker's create and start are most of a deploy's time, so Berth does its own part alongside:
    `meanwhile` (in this thread: it writes to the database) announces the start and finds the image.
    An image the host did not have fails the create at once; `meanwhile` has pulled it by then, and
    the container is created again. Returns the container's id and the image."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(engine.run, spec)
        try:
            image = meanwhile()
        except BaseException:
            _remove_if_started(engine, started)
            raise
        try:
            return started.result(), image
        except ImageNotFound:
            return engine.run(spec), image


def _remove_if_started(engine: Engine, started: Future) -> None:
    """A container Docker started for a start that failed on Berth's side is not left running."""
    with contextlib.suppress(Exception):
        engine.remove(started.result())


def _probe(
    process: ProcessType, host: DockerHost, port: int | None, engine: Engine, docker_id: str
) -> tuple[bool, str]:
    return probe(process.health, address=host.address, port=port, engine=engine, docker_id=docker_id)


@dataclass
class HealthResult:
    healthy: bool
    reason: str


def wait_healthy(container: Container, process: ProcessType, deployment: Deployment | None) -> HealthResult:
    """Probe until healthy, or until the check's retries fail after its start grace, or the container
    exits. start_container probed once already: a container that answered then is done."""
    if container.health == Container.Health.HEALTHY:
        transitions.container_healthy(container)
        return HealthResult(True, "answered when started")
    check = process.health
    began = time.monotonic()
    failures = container.health_failures
    polls = 0
    with Engine(container.host) as engine:
        while True:
            # In the start grace, poll soon and then less often: most processes answer within a
            # fraction of a second, and each poll of that wait is latency added to a deploy. A
            # container that is not running yet is looked at once more at once.
            in_grace = time.monotonic() - began < check.start_period_s
            if polls or container.state == Container.State.RUNNING:
                time.sleep(min(check.interval_s, 0.25, 0.01 * 2**polls) if in_grace else check.interval_s)
            polls += 1
            if deployment is not None:
                heartbeat(deployment)
            observed = engine.inspect(container.docker_id)
            if _gone(observed):
                return HealthResult(False, _exit_reason(engine, container, observed))
            healthy, seen = _probe(process, container.host, container.published_port, engine, container.docker_id)
            if healthy:
                # Healthy: into the routes first, the deployment's story and the usage records after.
                transitions.container_healthy(container, observed, usage=False)
                routing.join(container, deployment)
                step(deployment, f"{container.name} is healthy ({seen}).", container=container)
                transitions.container_usage_sync(container)
                return HealthResult(True, seen)
            if time.monotonic() - began >= check.start_period_s:
                failures += 1
            if failures >= check.retries:
                transitions.container_unhealthy(container)
                return HealthResult(False, f"{container.name} failed its health check {failures} times: {seen}")


def _gone(observed: ObservedContainer | None) -> bool:
    return observed is None or observed.state in DOCKER_ENDED


def _exit_reason(engine: Engine, container: Container, observed: ObservedContainer | None) -> str:
    """Record a container's exit and say why it ended, with the last of what it printed."""
    logs = engine.logs_tail(container.docker_id) if observed else ""
    transitions.container_exited(container, observed)
    code = observed.exit_code if observed else "?"
    oom = " (killed for running out of memory)" if observed and observed.oom_killed else ""
    return f"{container.name} exited with code {code}{oom}" + (f"; last log: {logs[-300:]}" if logs else "")


def wait_ready(containers: list[Container], process: ProcessType, deployment: Deployment | None) -> list[HealthResult]:
    """A healthy container counts as ready once it stayed healthy for its process type's min_ready_s:
    a release that crashes or fails its health check soon after starting fails its deployment while the
    containers it was to replace still serve. Each is looked at (inspect, probe) at the health check's
    interval meanwhile. Several (a scale-out's new replicas) wait together, so the ready time is paid
    once, not once per batch of starts. Results in the order of `containers`."""
    if process.min_ready_s <= 0:
        return [HealthResult(True, "no ready time") for _ in containers]
    check = process.health
    # Only healthy containers come here: healthy_at is set.
    ready_at = {c.pk: cast(datetime, c.healthy_at) + timedelta(seconds=process.min_ready_s) for c in containers}
    failures = dict.fromkeys(ready_at, 0)
    results: dict[int, HealthResult] = {}
    with contextlib.ExitStack() as stack:
        engines: dict[int, Engine] = {}
        while pending := [c for c in containers if c.pk not in results]:
            left = (min(ready_at[c.pk] for c in pending) - timezone.now()).total_seconds()
            time.sleep(max(0.0, min(left, check.interval_s)))
            if deployment is not None:
                heartbeat(deployment)
            for container in pending:
                if container.host_id not in engines:
                    engines[container.host_id] = stack.enter_context(Engine(container.host))
                result = _look_while_ready(engines[container.host_id], container, process, failures)
                if result is None and timezone.now() >= ready_at[container.pk]:
                    step(
                        deployment,
                        f"{container.name} is ready: healthy for {process.min_ready_s:g} s.",
                        container=container,
                    )
                    result = HealthResult(True, "ready")
                if result is not None:
                    results[container.pk] = result
    return [results[c.pk] for c in containers]


def _look_while_ready(
    engine: Engine, container: Container, process: ProcessType, failures: dict
) -> HealthResult | None:
    """One look at a container waiting to be ready: why it is not, or None while it holds up."""
    observed = engine.inspect(container.docker_id)
    if _gone(observed):
        return HealthResult(False, _exit_reason(engine, container, observed))
    healthy, seen = _probe(process, container.host, container.published_port, engine, container.docker_id)
    failures[container.pk] = 0 if healthy else failures[container.pk] + 1
    if failures[container.pk] < process.health.retries:
        return None
    transitions.container_unhealthy(container)
    return HealthResult(False, f"{container.name} failed its health check {failures[container.pk]} times: {seen}")


def stop_container(container: Container, deployment: Deployment | None, why: str) -> None:
    """Leave the routes, then stop gracefully (SIGTERM, then SIGKILL after the timeout), store the last
    lines it printed and remove it; the row keeps the host's times. The routers send it nothing new once
    it is `stopping`, and it is stopped when they have no request in flight to it, or after the app's
    drain timeout."""
    transitions.container_stopping(container)
    step(deployment, f"Stopping {container.name}: {why}.", host=container.host, container=container)
    drain_timeout_s = App.objects.filter(pk=container.app_id).values_list("drain_timeout_s", flat=True).first()
    routing.leave(container, drain_timeout_s or 0, deployment)
    try:
        with Engine(container.host) as engine:
            engine.stop(container.docker_id, timeout_s=STOP_TIMEOUT_S)
            observed = engine.inspect(container.docker_id)
            logs.flush_container(engine, container)  # its last lines outlive it
            engine.remove(container.docker_id)
    except EngineError as error:
        if not error.transient:
            raise
        # The host is unreachable: the reconciler removes the container when the host answers again.
        transitions.containers_lost([container])
        return
    transitions.container_removed(container, observed)
