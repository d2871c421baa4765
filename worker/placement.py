"""Where a new container runs: the one module that decides placement (docs/architecture.md#invariants).

Pure arithmetic over host capacities and what already runs, so it is deterministic and testable
without engines. An orchestrator could take this module's place.
"""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class HostLoad:
    """A schedulable host and what is already placed on it."""

    host_id: int
    name: str
    memory_mb: int
    memory_used_mb: int
    # Live containers of the process type being placed: of the target release, and of any release.
    same_release: int
    same_process_type: int
    # Live containers of the app's organization: they share one network, whose addresses run out.
    organization_containers: int = 0
    # Its engine remaps user namespaces: an image that runs as root is root there only in name.
    userns_remap: bool = False
    # New containers that recently failed to become healthy there (fleet.selectors.RECENT_FAILURES_WINDOW).
    recent_failures: int = 0

    @property
    def failing(self) -> bool:
        return self.recent_failures >= FAILING_HOST_FAILURES

    @property
    def free_mb(self) -> int:
        return self.memory_mb - self.memory_used_mb


# A host where this many new containers recently failed their health checks is tried after every other
# host: its address may be cut off while its engine answers. A soft rule, since a bad release fails
# everywhere and must still be placed (its deployment then fails with the reason).
FAILING_HOST_FAILURES = 2


class PlacementError(Exception):
    """No host can take the container; the message says why."""


@dataclass(frozen=True)
class Placement:
    host_id: int
    reason: str


def place(hosts: list[HostLoad], memory_mb: int, *, organization_limit: int, root_image: bool = False) -> Placement:
    """Pick a host for one container of `memory_mb`.

    A host fits when it has the memory free and fewer than `organization_limit` of the
    organization's containers (the addresses of the organization's network on it). Among those:
    for an image that runs as root (`root_image`), hosts that remap user namespaces first (elsewhere
    it runs as an unprivileged user, which it may not expect); hosts where new containers keep failing
    their health checks last; then spread (fewest containers of the target release, then of the process
    type at all), then the most free memory, then the name, so the same inputs always give the same host.
    """
    if not hosts:
        raise PlacementError("No host is active and up: all are cordoned, draining, degraded or down.")
    roomy = [h for h in hosts if h.organization_containers < organization_limit]
    if not roomy:
        raise PlacementError(
            f"Every host already runs {organization_limit} of this organization's containers, "
            "as many as its network on a host has addresses for."
        )
    fitting = [h for h in roomy if h.free_mb >= memory_mb]
    if not fitting:
        most = max(roomy, key=lambda h: h.free_mb)
        raise PlacementError(f"No host has {memory_mb} MB free; the most is {most.free_mb} MB on {most.name}.")
    best = min(
        fitting,
        key=lambda h: (
            h.failing,
            root_image and not h.userns_remap,
            h.same_release,
            h.same_process_type,
            -h.free_mb,
            h.name,
        ),
    )
    return Placement(
        host_id=best.host_id,
        reason=(
            f"{best.name}: {best.same_release} of this release's replicas there, "
            f"{best.free_mb} of {best.memory_mb} MB free ({len(fitting)} of {len(hosts)} hosts fit)"
            + (f"; the image runs as root, {_remapping(best)}" if root_image else "")
            + _failing_note(best, fitting)
        ),
    )


def _remapping(host: HostLoad) -> str:
    if host.userns_remap:
        return "which this host remaps to an unprivileged user"
    return "and no host that fits remaps user namespaces: it runs as uid 65534"


def _failing_note(best: HostLoad, fitting: list[HostLoad]) -> str:
    """What the step says when health failures weighed in the choice."""
    if best.failing:
        return (
            f"; new containers recently failed their health checks on every fitting host ({best.recent_failures} here)"
        )
    passed_over = [f"{h.name} ({h.recent_failures} failed)" for h in sorted(fitting, key=lambda h: h.name) if h.failing]
    if not passed_over:
        return ""
    return f"; passed over, as new containers recently failed their health checks there: {', '.join(passed_over)}"


def place_many(
    hosts: list[HostLoad], memory_mb: int, count: int, *, organization_limit: int, root_image: bool = False
) -> list[Placement]:
    """Places for `count` containers started together: each counts as placed for the next, so
    they spread as if started one by one. All or nothing: PlacementError if any cannot be placed."""
    loads = list(hosts)
    placements = []
    for _ in range(count):
        chosen = place(loads, memory_mb, organization_limit=organization_limit, root_image=root_image)
        placements.append(chosen)
        loads = [
            replace(
                h,
                memory_used_mb=h.memory_used_mb + memory_mb,
                same_release=h.same_release + 1,
                same_process_type=h.same_process_type + 1,
                organization_containers=h.organization_containers + 1,
            )
            if h.host_id == chosen.host_id
            else h
            for h in loads
        ]
    return placements
