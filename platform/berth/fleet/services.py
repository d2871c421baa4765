"""Operators' changes to hosts and sizes; only the worker speaks to engines (docs/architecture.md#invariants)."""

import json
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from berth.audit.services import audit_record
from berth.core import task_names
from berth.core.crypto import encrypt
from berth.core.errors import Conflict, Invalid, Unavailable
from berth.core.queue import NoAnswer, ask, enqueue_on_commit
from berth.tenancy.models import User

from .credentials import CONNECTION_FIELDS, credential_problems, normalize_host_key
from .models import DockerHost, Size
from .selectors import live_containers


def host_connection_test(**connection: str) -> dict:
    """Have a worker connect to the engine with these credentials; its version, ID and whether it remaps
    user namespaces, or Invalid naming the field at fault (a CA the engine's certificate does not chain
    to, a refused key, a host key that is not the server's). The credentials travel to the worker
    encrypted with the field keys, so the broker never holds them in clear; nothing secret comes back."""
    problems = credential_problems(**connection)
    if problems:
        field, reasons = next(iter(problems.items()))
        raise Invalid(reasons[0], field=field)
    sealed = encrypt(json.dumps({name: connection.get(name) or "" for name in CONNECTION_FIELDS}))
    try:
        answer = ask(task_names.CHECK_ENGINE, sealed, timeout=settings.BERTH_ENGINE_CHECK_TIMEOUT_SECONDS)
    except NoAnswer:
        raise Unavailable(
            "No worker answered to check the engine; is the worker running? Nothing was registered.",
            code="worker_unavailable",
        ) from None
    if "error" in answer:
        raise Invalid(answer["error"], field=answer["field"], code="engine_refused")
    return answer


def host_register(
    *, actor: User | None, engine: dict | None = None, test_connection: bool = True, **fields: Any
) -> DockerHost:
    """Register a host once a worker has reached its engine (`engine`: that answer, if the caller already
    has it); the host starts up, with the engine's version. `test_connection=False` leaves the check
    to the heartbeat (bootstrap registers the local engine before any worker runs)."""
    if fields.get("ssh_host_key"):
        fields["ssh_host_key"] = normalize_host_key(fields["ssh_host_key"]) or fields["ssh_host_key"]
    if engine is None and test_connection:
        if DockerHost.objects.filter(name=fields.get("name")).exists():  # before bothering a worker
            raise Conflict("A host with this name already exists.", field="name", code="name_taken")
        engine = host_connection_test(**{name: fields.get(name, "") for name in CONNECTION_FIELDS})
    return _host_create(actor=actor, engine=engine, fields=fields)


@transaction.atomic
def _host_create(*, actor: User | None, engine: dict | None, fields: dict) -> DockerHost:
    if engine:
        fields |= {
            "status": DockerHost.Status.UP,
            "engine_version": engine["version"],
            "engine_id": engine["engine_id"],
            "userns_remap": engine.get("userns_remap", False),
            "last_heartbeat_at": timezone.now(),
        }
    try:
        with transaction.atomic():
            host = DockerHost.objects.create(**fields)
    except IntegrityError:
        raise Conflict("A host with this name already exists.", field="name", code="name_taken") from None
    # Names and addresses only: certificates and keys stay out of the audit log.
    audit_record(
        actor=actor,
        action="host.register",
        target=host,
        changes={
            "name": host.name,
            "engine_url": host.engine_url,
            "address": host.address,
            "engine_version": host.engine_version,
            "userns_remap": host.userns_remap,
        },
    )
    enqueue_on_commit(task_names.CHECK_HOSTS)
    return host


OPERATOR_STATES = (DockerHost.State.ACTIVE, DockerHost.State.CORDONED, DockerHost.State.DRAINING)


@transaction.atomic
def host_set_state(*, actor: User, host: DockerHost, state: str) -> DockerHost:
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
        enqueue_on_commit(task_names.RECONCILE)
    return host


@transaction.atomic
def host_remove(*, actor: User, host: DockerHost) -> None:
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
def size_create(*, actor: User | None, name: str, memory_mb: int, cpu_millis: int, is_default: bool = False) -> Size:
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


@transaction.atomic
def size_update(*, actor: User, size: Size, name: str, memory_mb: int, cpu_millis: int, is_default: bool) -> Size:
    """Rename a size or change its limits, and make it the default or not. Making it the default takes
    the flag from the old default under the lock size_create takes."""
    if is_default:
        Size.objects.select_for_update().filter(is_default=True).exclude(pk=size.pk).update(is_default=False)
    current = Size.objects.select_for_update().get(pk=size.pk)
    wanted = {"name": name, "memory_mb": memory_mb, "cpu_millis": cpu_millis, "is_default": is_default}
    changes = {
        field: [getattr(current, field), value] for field, value in wanted.items() if getattr(current, field) != value
    }
    for field, value in wanted.items():
        setattr(size, field, value)
    try:
        with transaction.atomic():
            size.save(update_fields=list(wanted))
    except IntegrityError:
        raise Conflict("A size with this name already exists.", field="name", code="name_taken") from None
    audit_record(actor=actor, action="size.update", target=size, changes=changes)
    return size
