"""A canary's arithmetic: which process types it runs and how many replicas (docs/deploys.md#canary-releases).

Pure functions of stored process types and numbers, shared by the services that accept a canary, the
worker's converge and heal, and the app's state.
"""

from berth.applications.specs import load_process_types

MIN_WEIGHT = 1
MAX_WEIGHT = 99


def canary_quantity(quantity: int, weight: int) -> int:
    """Replicas of a canary at `weight` % beside `quantity` replicas of the app's release: the same share
    of the replicas, rounded half up, and at least one; none for a process type scaled to 0. The router
    gives the canary its share of the requests whatever the counts (berth.routing.weights); the count
    only sizes the canary for its share of the load."""
    if quantity <= 0:
        return 0
    return max(1, (quantity * weight + 50) // 100)


def routed_process_types(canary: dict, running: dict) -> list[str]:
    """The process types a canary runs, given both releases' stored process types: those that take HTTP
    in both, since only requests can be split. Its other process types are not started: the app's
    release keeps running them."""
    ours, theirs = load_process_types(canary), load_process_types(running)
    return sorted(name for name, process in ours.items() if process.http and name in theirs and theirs[name].http)
