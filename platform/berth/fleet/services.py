"""Operators' changes to the fleet: hosts and sizes. Checking a host happens in the worker."""

from django.db import IntegrityError, transaction

from berth.audit.services import audit_record
from berth.core.errors import Conflict
from berth.core.queue import enqueue_on_commit

from .models import DockerHost, Size
from .selectors import live_containers

CHECK_HOST_TASK = "berth.fleet.check_hosts"
RECONCILE_TASK = "berth.fleet.reconcile"


@transaction.atomic
def host_register(*, actor, **fields) -> DockerHost:
    """Register a host; the worker checks the connection and records the engine version."""
    try:
        with transaction.atomic():
            host = DockerHost.objects.create(**fields)
    except IntegrityError:
        raise Conflict("A host with this name already exists.", field="name", code="name_taken") from None
    audit_record(
        actor=actor,
        action="host.register",
        target=host,
        changes={"name": host.name, "engine_url": host.engine_url, "address": host.address},
    )
    enqueue_on_commit(CHECK_HOST_TASK)
    return host


@transaction.atomic
def host_set_state(*, actor, host: DockerHost, state: str) -> DockerHost:
    """Cordon (no new containers), drain (move containers away, start-first) or activate a host."""
    old = host.state
    host.state = state
    host.save(update_fields=["state"])
    audit_record(actor=actor, action=f"host.{state}", target=host, changes={"state": [old, state]})
    if state == DockerHost.State.DRAINING:
        enqueue_on_commit(RECONCILE_TASK)
    return host


@transaction.atomic
def host_remove(*, actor, host: DockerHost) -> None:
    count = live_containers(host=host).count()
    if count:
        raise Conflict(f"{host.name} still runs {count} containers; drain it first.", code="host_not_empty")
    audit_record(actor=actor, action="host.remove", target=host, changes={"name": host.name})
    if host.containers.exists():
        # Kept, retired, for the records of the containers it ran (usage is billed from them).
        host.state = DockerHost.State.RETIRED
        host.save(update_fields=["state"])
    else:
        host.delete()


@transaction.atomic
def size_create(*, actor, name: str, memory_mb: int, cpu_millis: int, is_default: bool = False) -> Size:
    if is_default:
        Size.objects.filter(is_default=True).update(is_default=False)
    try:
        with transaction.atomic():
            size = Size.objects.create(name=name, memory_mb=memory_mb, cpu_millis=cpu_millis, is_default=is_default)
    except IntegrityError:
        raise Conflict("A size with this name already exists.", field="name", code="name_taken") from None
    audit_record(
        actor=actor, action="size.create", target=size, changes={"memory_mb": memory_mb, "cpu_millis": cpu_millis}
    )
    return size
