"""Quotas: what an organization may run. Checked before scaling, deploying or creating an app;
a quota never stops containers that already run."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Sum

from berth.core.errors import BerthError
from berth.tenancy.models import Organization

from .models import Quota


class QuotaExceeded(BerthError):
    status = 403
    code = "quota_exceeded"


@dataclass(frozen=True)
class Limits:
    max_apps: int
    max_containers: int
    max_memory_mb: int


def limits_for(organization) -> Limits:
    defaults = settings.BERTH_DEFAULT_QUOTA
    try:
        quota = organization.quota  # already at hand when the organization was read with select_related
    except Quota.DoesNotExist:
        quota = None
    return Limits(
        **{
            name: (getattr(quota, name) if quota is not None and getattr(quota, name) is not None else default)
            for name, default in defaults.items()
        }
    )


def usage_of(organization) -> dict:
    """Apps, and the containers and memory the formations of the organization's apps ask for."""
    from berth.applications.models import App

    return {"apps": App.objects.filter(organization=organization).count(), **_formations_total(organization)}


def _formations_total(organization, *, except_app=None) -> dict:
    from berth.applications.models import Formation

    formations = Formation.objects.filter(app__organization=organization)
    if except_app is not None:
        formations = formations.exclude(app=except_app)
    totals = formations.aggregate(containers=Sum("quantity"), memory=Sum(F("quantity") * F("size__memory_mb")))
    return {"containers": totals["containers"] or 0, "memory_mb": totals["memory"] or 0}


def quota_check_new_app(organization) -> None:
    limit = limits_for(organization).max_apps
    count = usage_of(organization)["apps"]
    if count + 1 > limit:
        raise QuotaExceeded(f"The organization has {count} apps; its limit is {limit}.", field="name")


def quota_check_formation(
    organization, app, wanted: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]]
) -> None:
    """The app's whole formation after and before the change, {process type: (quantity, memory MB)}.

    Only growth is refused: an organization over a lowered quota can still scale down. A change that
    does not grow (most deploys) reads nothing and locks nothing.
    """
    grows_containers = sum(q for q, _ in wanted.values()) > sum(q for q, _ in before.values())
    grows_memory = sum(q * m for q, m in wanted.values()) > sum(q * m for q, m in before.values())
    if not (grows_containers or grows_memory):
        return
    # One growth check per organization at a time, until the caller's transaction ends.
    locked = Organization.objects.select_for_update(of=("self",)).select_related("quota").get(pk=organization.pk)
    limits = limits_for(locked)
    others = _formations_total(organization, except_app=app)
    containers = others["containers"] + sum(q for q, _ in wanted.values())
    memory = others["memory_mb"] + sum(q * m for q, m in wanted.values())
    if containers > limits.max_containers and grows_containers:
        raise QuotaExceeded(
            f"This would run {containers} containers; the organization's limit is {limits.max_containers} "
            f"({containers - limits.max_containers} over).",
            field="formation",
        )
    if memory > limits.max_memory_mb and grows_memory:
        raise QuotaExceeded(
            f"This would use {memory} MB of memory; the organization's limit is {limits.max_memory_mb} MB "
            f"({memory - limits.max_memory_mb} MB over).",
            field="formation",
        )


def quota_check_run(organization, size) -> None:
    """A one-off run is one more container at its size while it runs (docs/runs.md): refused when the
    organization's formations and its runs under way, with it, would pass its container or memory limit."""
    from berth.deployments.models import Run

    locked = Organization.objects.select_for_update(of=("self",)).select_related("quota").get(pk=organization.pk)
    limits = limits_for(locked)
    formations = _formations_total(organization)
    running = Run.objects.filter(app__organization=organization, state__in=Run.UNFINISHED).aggregate(
        count=Count("id"), memory=Sum("size__memory_mb")
    )
    containers = formations["containers"] + running["count"] + 1
    memory = formations["memory_mb"] + (running["memory"] or 0) + size.memory_mb
    if containers > limits.max_containers:
        raise QuotaExceeded(
            f"With its runs under way and this one, the organization would run {containers} containers; its "
            f"limit is {limits.max_containers}.",
            field="size",
        )
    if memory > limits.max_memory_mb:
        raise QuotaExceeded(
            f"With its runs under way and this one, the organization would use {memory} MB of memory; its limit "
            f"is {limits.max_memory_mb} MB.",
            field="size",
        )
