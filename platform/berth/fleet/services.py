"""Operators' changes to the fleet: hosts and sizes. Checking a host happens in the worker."""

from django.db import IntegrityError, transaction

from berth.audit.services import audit_record
from berth.core.errors import Conflict, Invalid
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


OPERATOR_STATES = (DockerHost.State.ACTIVE, DockerHost.State.CORDONED, DockerHost.State.DRAINING)


@transaction.atomic
def host_set_state(*, actor, host: DockerHost, state: str) -> DockerHost:
    """Cordon (no new containers), drain (move containers away, start-first) or activate a host."""
    host = DockerHost.objects.select_for_update().get(pk=host.pk)
    if state not in OPERATOR_STATES:
        raise Invalid(f"A host can be made {', '.join(OPERATOR_STATES)}.", field="state")
    if host.state == DockerHost.State.RETIRED:
        raise Conflict(f"{host.name} was removed from the fleet; register it again instead.", code="host_retired")
    if host.state == state:
        return host
    old = host.state
    host.state = state
    host.save(update_fields=["state"])
    audit_record(actor=actor, action=f"host.{state}", target=host, changes={"state": [old, state]})
    if state == DockerHost.State.DRAINING:
        enqueue_on_commit(RECONCILE_TASK)
    return host


@transaction.atomic
def host_remove(*, actor, host: DockerHost) -> None:
    # Locked, so no placement can choose the host between the count and the removal.
    host = DockerHost.objects.select_for_update().get(pk=host.pk)
    count = live_containers(host=host).count()
    if count:
        noun = "container" if count == 1 else "containers"
        raise Conflict(f"{host.name} still runs {count} {noun}; drain it first.", code="host_not_empty")
    audit_record(actor=actor, action="host.remove", target=host, changes={"name": host.name})
    if host.containers.exists():
        # Kept, retired, for the records of the containers it ran (usage is billed from them).
        host.state = DockerHost.State.RETIRED
        host.save(update_fields=["state"])
    else:
        host.delete()


@transaction.atomic
def size_create(*, actor, name: str, memory_mb: int, cpu_millis: int, is_default: bool = False) -> Size:
    if Size.objects.filter(name=name).exists():
        raise Conflict("A size with this name already exists.", field="name", code="name_taken")
    if is_default:
        # Locked: two sizes made default at once would otherwise both clear the old default.
        Size.objects.select_for_update().filter(is_default=True).update(is_default=False)
    try:
        with transaction.atomic():
            size = Size.objects.create(name=name, memory_mb=memory_mb, cpu_millis=cpu_millis, is_default=is_default)
    except IntegrityError:
        raise Conflict("A size with this name already exists.", field="name", code="name_taken") from None
    audit_record(
        actor=actor, action="size.create", target=size, changes={"memory_mb": memory_mb, "cpu_millis": cpu_millis}
    )
    return size
