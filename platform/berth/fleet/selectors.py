"""Shared reads about the fleet."""

from django.db.models import Count, Q, Sum

from .models import Container, DockerHost


def live_containers(**filters):
    return Container.objects.filter(state__in=Container.LIVE, **filters)


def schedulable_hosts():
    return DockerHost.objects.filter(state=DockerHost.State.ACTIVE, status=DockerHost.Status.UP)


def hosts_with_load(*, organization_id: int, app_id: int, process_type: str, release_id: int):
    """Schedulable hosts annotated with memory in use, the organization's live containers and this
    process type's."""
    live = Q(containers__state__in=Container.LIVE)
    mine = live & Q(containers__app_id=app_id, containers__process_type=process_type)
    return schedulable_hosts().annotate(
        memory_used_mb=Sum("containers__size__memory_mb", filter=live, default=0),
        organization_containers=Count("containers", filter=live & Q(containers__organization_id=organization_id)),
        same_release=Count("containers", filter=mine & Q(containers__release_id=release_id)),
        same_process_type=Count("containers", filter=mine),
    )
