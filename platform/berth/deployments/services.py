"""Releases, config, formation and restarts: every change of what should run makes a Deployment.

The API answers at once with that row; the worker converges the hosts on it. Each change composes
with the app's one desired state, in the order changes were accepted (docs/deploys.md): a new
release, config or formation builds on the target release (`selectors.target_release`), and a
deployment that fails gives back only what it changed.
"""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from berth.applications.models import CONFIG_KEY, App, ConfigVar, Formation, Release
from berth.applications.specs import parse_process_types
from berth.audit.services import audit_record
from berth.billing.quotas import quota_check_formation
from berth.core import task_names
from berth.core.errors import Conflict, Invalid, NotFound
from berth.core.queue import enqueue_on_commit
from berth.fleet.models import Container, DockerHost, Size
from berth.tenancy.models import User

from .models import Deployment
from .selectors import base_release, target_release

RESERVED_CONFIG_PREFIX = "BERTH_"
MAX_CONFIG_BYTES = 64 * 1024


def _lock_app(app: App) -> App:
    """Serialize changes of one app's releases and formation (its organization comes along, unlocked)."""
    return App.objects.select_for_update(of=("self",)).select_related("organization").get(pk=app.pk)


def _next_version(app: App) -> int:
    return (app.releases.aggregate(v=Max("version"))["v"] or 0) + 1


def _current_config(app: App) -> dict[str, str]:
    return {var.key: var.value for var in app.config_vars.all()}


def _formation(app: App) -> dict[str, Formation]:
    return {f.process_type: f for f in app.formation.select_related("size")}


def _snapshot(formation: dict[str, Formation]) -> dict[str, dict]:
    """What a deployment keeps to put the formation back if it fails: quantity and size per process type."""
    return {name: {"quantity": f.quantity, "size": f.size.name} for name, f in formation.items()}


def formation_snapshot(app: App) -> dict[str, dict]:
    return _snapshot(_formation(app))


def _demand(formation: dict[str, Formation], running: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(quantity, memory MB) of each process type the release runs: what the quota counts."""
    return {name: (f.quantity, f.size.memory_mb) for name, f in formation.items() if name in running}


def deployment_create(
    *,
    actor: User | None,
    app: App,
    release: Release,
    kind: str,
    formation: dict | None = None,
    previous_formation: dict | None = None,
    **restart: Any,
) -> Deployment:
    """Queue a deployment of `release` with the formation as it is now (or `formation`, the snapshot a
    caller that just changed it already has); `previous_formation` is what a failure gives back."""
    after = formation_snapshot(app) if formation is None else formation
    deployment = Deployment.objects.create(
        app=app,
        release=release,
        kind=kind,
        created_by=actor,
        previous_release_id=app.current_release_id,
        formation=after,
        previous_formation=after if previous_formation is None else previous_formation,
        **restart,
    )
    deployment.steps.create(message=f"Queued: {deployment.get_kind_display().lower()} to v{release.version}.")
    enqueue_on_commit(task_names.DEPLOY, deployment.pk, app.pk)
    return deployment


def _release_and_deploy(
    *,
    actor: User | None,
    app: App,
    image: str,
    process_types: dict,
    config: dict[str, str],
    description: str,
    kind: str,
    rollback_of: int | None = None,
) -> tuple[Release, Deployment]:
    formation = _formation(app)
    before = _snapshot(formation)
    release = Release.objects.create(
        app=app,
        version=_next_version(app),
        image=image,
        process_types=process_types,
        config=config,
        description=description,
        author=actor,
        rollback_of=rollback_of,
    )
    previous = _demand(formation, release.process_types)
    formation.update(_add_formation(app, release, formation))
    quota_check_formation(app.organization, app, _demand(formation, release.process_types), previous)
    deployment = deployment_create(
        actor=actor, app=app, release=release, kind=kind, formation=_snapshot(formation), previous_formation=before
    )
    audit_record(
        actor=actor,
        action=f"release.{kind}",
        target=release,
        organization=app.organization,
        changes={"version": release.version, "image": image, "config_keys": sorted(config)},
    )
    return release, deployment


def _add_formation(app: App, release: Release, formation: dict[str, Formation]) -> dict[str, Formation]:
    """A process type seen for the first time gets a formation: one web container, other types none.
    The app is locked, so nobody else adds one meanwhile."""
    new = [name for name in release.process_types if name not in formation]
    if not new:
        return {}
    default_size = Size.objects.filter(is_default=True).first() or Size.objects.order_by("memory_mb").first()
    if default_size is None:
        raise Conflict("No container sizes are defined yet; an operator must add one.", code="no_sizes")
    added = Formation.objects.bulk_create(
        Formation(app=app, process_type=name, quantity=1 if name == "web" else 0, size=default_size) for name in new
    )
    return {f.process_type: f for f in added}


@transaction.atomic
def release_create(
    *, actor: User, app: App, image: str, process_types: dict | None = None, description: str = ""
) -> tuple[Release, Deployment]:
    """Make release vN+1 from an image and process types, with the app's current config."""
    app = _lock_app(app)
    parsed = parse_process_types(process_types)
    stored = {name: spec.as_json() for name, spec in parsed.items()}
    return _release_and_deploy(
        actor=actor,
        app=app,
        image=image,
        process_types=stored,
        config=_current_config(app),
        description=description,
        kind=Deployment.Kind.RELEASE,
    )


@transaction.atomic
def release_rollback(*, actor: User, app: App, version: int) -> tuple[Release, Deployment]:
    """Make a new release with the image, process types and config of version `version`."""
    app = _lock_app(app)
    old = Release.objects.filter(app=app, version=version).first()
    if old is None:
        raise NotFound(f"This app has no release v{version}.", field="version")
    return _rollback(actor=actor, app=app, to=old, description=f"Rollback to v{version}")


def _rollback(*, actor: User | None, app: App, to: Release, description: str) -> tuple[Release, Deployment]:
    _config_replace(app, to.config)
    return _release_and_deploy(
        actor=actor,
        app=app,
        image=to.image,
        process_types=to.process_types,
        config=to.config,
        description=description[:200],
        kind=Deployment.Kind.ROLLBACK,
        rollback_of=to.version,
    )


@transaction.atomic
def release_rollback_crash_loop(*, app: App, to: Release, reason: str) -> tuple[Release, Deployment]:
    """Berth's own rollback of a release that crash-loops: the crashing release is marked, and a new
    release with `to`'s image, process types and config says why."""
    app = _lock_app(app)
    if app.current_release_id is not None:
        Release.objects.filter(pk=app.current_release_id).update(crash_looped_at=timezone.now())
    return _rollback(actor=None, app=app, to=to, description=f"Automatic rollback to v{to.version}: {reason}")


def _config_replace(app: App, config: dict[str, str]) -> None:
    """The app's config vars become exactly `config` (those of the release it moves to)."""
    if _current_config(app) == config:
        return
    ConfigVar.objects.filter(app=app).delete()
    ConfigVar.objects.bulk_create(ConfigVar(app=app, key=k, value=v) for k, v in config.items())


def _validate_config(values: dict) -> None:
    for key, value in values.items():
        try:
            CONFIG_KEY(key)
        except ValidationError:
            raise Invalid("Config keys are uppercase letters, digits and underscores.", field=key) from None
        if key.startswith(RESERVED_CONFIG_PREFIX) or key == "PORT":
            raise Invalid(f"{key} is set by Berth and cannot be changed.", field=key, code="reserved_key")
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise Invalid("A config value is a string (or null to unset it).", field=key)
    size = sum(len(k) + len(v or "") for k, v in values.items())
    if size > MAX_CONFIG_BYTES:
        raise Invalid(f"Config is limited to {MAX_CONFIG_BYTES} bytes.", field="config")


@transaction.atomic
def config_set(*, actor: User, app: App, values: dict[str, str | None]) -> tuple[Release | None, Deployment | None]:
    """Set (string) or unset (None) config vars; with a release already made, this makes a new one."""
    _validate_config(values)
    app = _lock_app(app)
    for key, value in values.items():
        if value is None:
            ConfigVar.objects.filter(app=app, key=key).delete()
        else:
            ConfigVar.objects.update_or_create(app=app, key=key, defaults={"value": value})
    config = _current_config(app)
    if sum(len(k) + len(v) for k, v in config.items()) > MAX_CONFIG_BYTES:
        raise Invalid(f"Config is limited to {MAX_CONFIG_BYTES} bytes in all.", field="config")
    # Only names go into the audit log, never values (docs/architecture.md#invariants).
    audit_record(
        actor=actor,
        action="config.update",
        target=app,
        organization=app.organization,
        changes={
            "set": sorted(k for k, v in values.items() if v is not None),
            "unset": sorted(k for k, v in values.items() if v is None),
        },
    )
    base = base_release(app)
    if base is None:
        return None, None
    return _release_and_deploy(
        actor=actor,
        app=app,
        image=base.image,
        process_types=base.process_types,
        config=config,
        description=_config_description(values),
        kind=Deployment.Kind.RELEASE,
    )


def _config_description(values: dict) -> str:
    set_keys = [k for k, v in values.items() if v is not None]
    unset = [k for k, v in values.items() if v is None]
    parts = ([f"Set {', '.join(set_keys)}"] if set_keys else []) + ([f"Unset {', '.join(unset)}"] if unset else [])
    return "; ".join(parts)[:200]


def largest_host_memory_mb() -> int:
    return DockerHost.objects.exclude(status=DockerHost.Status.DOWN).aggregate(m=Max("memory_mb"))["m"] or 0


@transaction.atomic
def formation_scale(*, actor: User, app: App, changes: dict[str, dict]) -> Deployment | None:
    """Change quantity and/or size per process type; the worker converges on it."""
    app = _lock_app(app)
    release = base_release(app)
    if release is None:
        raise Conflict("Create a release before scaling.", code="no_release")
    formation = _formation(app)
    before = _snapshot(formation)
    previous = _demand(formation, release.process_types)
    for process_type, change in changes.items():
        if process_type not in release.process_types:
            raise Invalid(f"v{release.version} has no process type {process_type!r}.", field=process_type)
        row = formation[process_type]
        if "size" in change:
            size = Size.objects.filter(name=change["size"]).first()
            if size is None:
                raise Invalid(f"There is no size {change['size']!r}.", field=f"{process_type}.size")
            if size.memory_mb > largest_host_memory_mb():
                raise Invalid(
                    f"Size {size.name} ({size.memory_mb} MB) is bigger than any host.",
                    field=f"{process_type}.size",
                    code="size_too_big",
                )
            row.size = size
        if "quantity" in change:
            row.quantity = change["quantity"]
        row.save()
    quota_check_formation(app.organization, app, _demand(formation, release.process_types), previous)
    audit_record(actor=actor, action="formation.update", target=app, organization=app.organization, changes=changes)
    if app.current_release is None and not app.deployments.filter(state__in=Deployment.UNFINISHED).exists():
        return None  # nothing deployed yet: the first release's deployment will use this formation
    return deployment_create(
        actor=actor,
        app=app,
        release=release,
        kind=Deployment.Kind.SCALE,
        formation=_snapshot(formation),
        previous_formation=before,
    )


@transaction.atomic
def app_restart(*, actor: User, app: App, process_type: str = "", container: Container | None = None) -> Deployment:
    """Replace the app's containers (all, one process type, or one), start-first."""
    app = _lock_app(app)
    release = target_release(app)
    if release is None:
        raise Conflict("The app runs no release yet.", code="no_release")
    if process_type and process_type not in release.process_types:
        raise Invalid(f"The app has no process type {process_type!r}.", field="process_type")
    deployment = deployment_create(
        actor=actor,
        app=app,
        release=release,
        kind=Deployment.Kind.RESTART,
        restart_process_type=process_type,
        restart_container=container,
    )
    audit_record(
        actor=actor,
        action="app.restart",
        target=app,
        organization=app.organization,
        changes={"process_type": process_type, "container": container.name if container else ""},
    )
    return deployment


@transaction.atomic
def deployment_give_back(deployment: Deployment) -> Release | None:
    """A deployment failed: give back what it changed, and nothing that a later change asked for.

    Each process type whose formation it changed returns to its previous quantity and size, unless a
    later change set it again. Queued changes that applied to its release now apply to the release that
    runs. The app's config vars become those of its target release again. Returns the release that
    runs (None when the app's first release failed)."""
    app = _lock_app(deployment.app)
    _formation_give_back(app, deployment)
    running = app.current_release
    if deployment.release_id != app.current_release_id:
        _retarget_queued(app, failed=deployment.release, running=running)
    target = target_release(app)
    if target is not None:
        _config_replace(app, target.config)
    return running


def _formation_give_back(app: App, deployment: Deployment) -> None:
    formation = _formation(app)
    sizes = {
        s.name: s for s in Size.objects.filter(name__in=[v["size"] for v in deployment.previous_formation.values()])
    }
    for process_type, before in deployment.previous_formation.items():
        asked, row = deployment.formation.get(process_type), formation.get(process_type)
        if row is None or asked is None or asked == before or _snapshot({process_type: row})[process_type] != asked:
            continue  # this deployment did not change it, or a later change did
        row.quantity, row.size = before["quantity"], sizes[before["size"]]
        row.save(update_fields=["quantity", "size", "updated_at"])


def _retarget_queued(app: App, *, failed: Release, running: Release | None) -> None:
    queued = list(Deployment.objects.filter(app=app, state=Deployment.State.QUEUED, release=failed))
    for later in queued:
        if running is None:
            later.steps.create(message=f"Cancelled: v{failed.version}, which it applied to, failed and nothing runs.")
            Deployment.objects.filter(pk=later.pk).update(
                state=Deployment.State.FAILED, finished_at=timezone.now(), error=f"v{failed.version} failed"
            )
        else:
            later.steps.create(message=f"v{failed.version} failed: this change now applies to v{running.version}.")
            Deployment.objects.filter(pk=later.pk).update(release=running)
