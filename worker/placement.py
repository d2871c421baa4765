"""Where a new container runs: the one module that decides placement (DESIGN §7).

Pure arithmetic over host capacities and what already runs, so it is deterministic and testable
without engines. An orchestrator could take this module's place.
"""

from dataclasses import dataclass


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

    @property
    def free_mb(self) -> int:
        return self.memory_mb - self.memory_used_mb


class PlacementError(Exception):
    """No host can take the container; the message says why."""


@dataclass(frozen=True)
class Placement:
    host_id: int
    reason: str


def place(hosts: list[HostLoad], memory_mb: int) -> Placement:
    """Pick a host for one container of `memory_mb`.

    Spread first (fewest containers of the target release, then of the process type at all),
    then the most free memory, then the name, so the same inputs always give the same host.
    """
    if not hosts:
        raise PlacementError("No host is active and up: all are cordoned, draining or down.")
    fitting = [h for h in hosts if h.free_mb >= memory_mb]
    if not fitting:
        most = max(hosts, key=lambda h: h.free_mb)
        raise PlacementError(f"No host has {memory_mb} MB free; the most is {most.free_mb} MB on {most.name}.")
    best = min(fitting, key=lambda h: (h.same_release, h.same_process_type, -h.free_mb, h.name))
    return Placement(
        host_id=best.host_id,
        reason=(
            f"{best.name}: {best.same_release} of this release's replicas there, "
            f"{best.free_mb} of {best.memory_mb} MB free ({len(fitting)} of {len(hosts)} hosts fit)"
        ),
    )
