"""Releases, config, formation and restarts: every change of what should run makes a Deployment.

The API answers at once with that row; the worker converges the hosts on it. Each change composes
with the app's one desired state, in the order changes were accepted (docs/deploys.md): a new
release, config or formation builds on the target release (`selectors.target_release`), and a
deployment that fails gives back only what it changed.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from berth.applications.models import CONFIG_KEY, App, ConfigVar, Formation, Release
from berth.applications.specs import parse_process_types, parse_release_command, parse_run_command, parse_timeout
from berth.audit.services import audit_record
from berth.billing.quotas import quota_check_formation, quota_check_run
from berth.core import task_names
from berth.core.errors import Conflict, Invalid, NotFound
from berth.core.queue import enqueue_on_commit
from berth.fleet.models import Container, DockerHost, Size
from berth.logs import store as logs
from berth.tenancy.models import User

from .canary import MAX_WEIGHT, MIN_WEIGHT, canary_quantity, routed_process_types
from .models import Canary, Deployment, Run
from .selectors import active_canary, base_release, target_release

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

RESERVED_CONFIG_PREFIX = "BERTH_"
MAX_CONFIG_BYTES = 64 * 1024


class _Locked(TypedDict):
    """What _lock_app reads with the app."""

    # The app's active canary (deployments.Canary), if any: read with the lock, so that the changes a canary
    # refuses cost no query of their own (tests/api/test_query_counts.py).
    active_canary_id: int | None


def _lock_app(app: App) -> "WithAnnotations[App, _Locked]":
    """Serialize changes of one app's releases and formation (its organization comes along, unlocked)."""
    active = Canary.objects.filter(app=OuterRef("pk"), state=Canary.State.ACTIVE).values("pk")[:1]
    locked = App.objects.select_for_update(of=("self",)).select_related("organization")
    return cast("WithAnnotations[App, _Locked]", locked.annotate(active_canary_id=Subquery(active)).get(pk=app.pk))


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


def _canary_demand(app: App, formation: dict[str, Formation], canary: Canary | None) -> dict[str, tuple[int, int]]:
    """(quantity, memory MB) of the canary's replicas per process type it runs, keyed apart from the
    formation's, for the quota to count them beside the release's."""
    if canary is None or app.current_release is None:
        return {}
    routed = routed_process_types(canary.release.process_types, app.current_release.process_types)
    return {
        f"{name} (canary)": (canary_quantity(formation[name].quantity, canary.weight), formation[name].size.memory_mb)
        for name in routed
        if name in formation
    }


def _refuse_during_canary(app: "WithAnnotations[App, _Locked]", change: str, why: str) -> None:
    """A change that would build a new release of the app while a canary runs is refused, saying why:
    the canary is measured against the release that runs, and promoting it would silently undo the change."""
    if app.active_canary_id is None:
        return
    canary = active_canary(app)
    if canary is not None:
        raise Conflict(
            f"v{canary.release.version} runs as a canary at {canary.weight}%: promote or abort the canary first. "
            f"{change} {why}",
            code="canary_active",
        )


# Why a change that makes a release waits for the canary to end (_refuse_during_canary).
_REPLACES_RUNNING = (
    "would replace the release the canary is compared with, and promoting the canary afterwards would "
    "undo it without a word."
)


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
    release_command: dict,
    rollback_of: int | None = None,
) -> tuple[Release, Deployment]:
    formation = _formation(app)
    before = _snapshot(formation)
    release = Release.objects.create(
        app=app,
        version=_next_version(app),
        image=image,
        process_types=process_types,
        release_command=release_command,
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
    *,
    actor: User,
    app: App,
    image: str,
    process_types: dict | None = None,
    description: str = "",
    release_command: str | list | None = None,
    release_timeout: int | None = None,
) -> tuple[Release, Deployment]:
    """Make release vN+1 from an image and process types, with the app's current config; with a release
    command, which runs before any of its containers serves (docs/deploys.md#the-release-command)."""
    app = _lock_app(app)
    _refuse_during_canary(app, "A new release", _REPLACES_RUNNING)
    parsed = parse_process_types(process_types)
    command = parse_release_command(release_command, release_timeout)
    stored = {name: spec.as_json() for name, spec in parsed.items()}
    return _release_and_deploy(
        actor=actor,
        app=app,
        image=image,
        process_types=stored,
        config=_current_config(app),
        description=description,
        kind=Deployment.Kind.RELEASE,
        release_command=command,
    )


@transaction.atomic
def release_rollback(*, actor: User, app: App, version: int) -> tuple[Release, Deployment]:
    """Make a new release with the image, process types and config of version `version`."""
    app = _lock_app(app)
    _refuse_during_canary(app, "A rollback", _REPLACES_RUNNING)
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
        release_command=to.release_command,
        rollback_of=to.version,
    )


@transaction.atomic
def release_rollback_crash_loop(*, app: App, to: Release, reason: str) -> tuple[Release, Deployment]:
    """Berth's own rollback of a release that crash-loops: the crashing release is marked, and a new
    release with `to`'s image, process types and config says why."""
    app = _lock_app(app)
    if app.current_release_id is not None:
        Release.objects.filter(pk=app.current_release_id).update(crash_looped_at=timezone.now())
    canary = active_canary(app)
    if canary is not None:  # it was compared with the release that crash-loops; its replicas go with it
        _canary_end(
            canary, state=Canary.State.ABORTED, actor=None, reason=f"Berth rolled back to v{to.version}: {reason}"
        )
    return _rollback(actor=None, app=app, to=to, description=f"Automatic rollback to v{to.version}: {reason}")


def _config_replace(app: App, config: dict[str, str]) -> None:
    """The app's config vars become exactly `config` (those of the release it moves to)."""
    if _current_config(app) == config:
        return
    ConfigVar.objects.filter(app=app).delete()
    ConfigVar.objects.bulk_create(ConfigVar(app=app, key=k, value=v) for k, v in config.items())


def config_validate(values: dict) -> None:
    """Refuse a change of config vars (KEY: value to set, KEY: None to unset) that breaks a rule of
    keys and values, naming the key; `config_set` checks it, and a preview can check it beforehand."""
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
def config_reveal(*, actor: User, app: App, keys: Iterable[str] | None = None) -> dict[str, str]:
    """The values of the app's config vars named in `keys` (all of them when None), for a person who
    asked to see them. Reading a value is recorded in the audit log, by key: the values never are."""
    config_vars = app.config_vars.order_by("key")
    if keys is not None:
        config_vars = config_vars.filter(key__in=list(keys))
    values = {var.key: var.value for var in config_vars}
    if values:
        audit_record(
            actor=actor,
            action="config.reveal",
            target=app,
            organization=app.organization,
            changes={"keys": list(values)},
        )
    return values


@transaction.atomic
def config_set(*, actor: User, app: App, values: dict[str, str | None]) -> tuple[Release | None, Deployment | None]:
    """Set (string) or unset (None) config vars; with a release already made, this makes a new one."""
    config_validate(values)
    app = _lock_app(app)
    _refuse_during_canary(
        app,
        "A config change",
        "makes a new release of the one that runs; the canary's release keeps the config it was made "
        "with, so promoting it afterwards would undo the change without a word.",
    )
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
        release_command=base.release_command,
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
    # Its replicas follow the formation's quantity and size.
    canary = active_canary(app) if app.active_canary_id is not None else None
    previous = {**_demand(formation, release.process_types), **_canary_demand(app, formation, canary)}
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
    wanted = {**_demand(formation, release.process_types), **_canary_demand(app, formation, canary)}
    quota_check_formation(app.organization, app, wanted, previous)
    audit_record(actor=actor, action="formation.update", target=app, organization=app.organization, changes=changes)
    scaled = ", ".join(f"{name}: {row.quantity} x {row.size.name}" for name, row in sorted(formation.items()))
    transaction.on_commit(lambda: logs.say(app.pk, "scale", f"Scaled to {scaled} by {actor}"))
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
def deployment_give_back(deployment: Deployment, reason: str = "") -> Release | None:
    """A deployment failed (for `reason`): give back what it changed, and nothing that a later change
    asked for.

    Each process type whose formation it changed returns to its previous quantity and size, unless a
    later change set it again. Queued changes that applied to its release now apply to the release that
    runs. The app's config vars become those of its target release again. A canary whose start, weight
    change or promotion failed ends (failed), and its replicas go. Returns the release that runs (None
    when the app's first release failed)."""
    app = _lock_app(deployment.app)
    _formation_give_back(app, deployment)
    running = app.current_release
    _canary_give_back(app, deployment, reason)
    if deployment.release_id != app.current_release_id and deployment.kind not in Deployment.BESIDE:
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


def _canary_give_back(app: App, deployment: Deployment, reason: str) -> None:
    """A canary whose own deployment (start, weight change) failed ends as failed, and so does one whose
    promotion failed: the app returns to the release that runs, without the canary beside it."""
    if deployment.kind == Deployment.Kind.CANARY:
        canary = active_canary(app)
        if canary is not None and canary.release_id == deployment.release_id:
            _canary_end(canary, state=Canary.State.FAILED, actor=None, reason=reason)
    elif deployment.kind == Deployment.Kind.PROMOTE:
        promoted = (
            Canary.objects.filter(app=app, release_id=deployment.release_id, state=Canary.State.PROMOTED)
            .order_by("-id")
            .first()
        )
        if promoted is not None:
            promoted.state, promoted.reason = Canary.State.FAILED, f"Its promotion failed: {reason}"[:2000]
            promoted.save(update_fields=["state", "reason"])


# --- canaries (docs/deploys.md#canary-releases) ------------------------------------------------------


def canary_weight_check(weight: object, *, field: str = "canary_weight") -> int:
    """A canary's weight is a whole number of percent from 1 to 99: 0 would be no canary and 100 a release."""
    if not isinstance(weight, int) or isinstance(weight, bool) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise Invalid(
            f"A canary's weight is a whole number from {MIN_WEIGHT} to {MAX_WEIGHT} (percent of the requests); "
            f"to send all requests to a release, deploy it or promote the canary.",
            field=field,
        )
    return weight


def _running_or_refuse(app: App) -> Release:
    if app.current_release is None:
        raise Conflict(
            "The first release of an app can't be a canary: nothing runs yet to share the requests with. "
            "Deploy it as a release.",
            field="canary_weight",
            code="no_release",
        )
    return app.current_release


def _canary_processes(app: App, formation: dict[str, Formation], process_types: dict) -> list[str]:
    """The process types a canary of these process types runs beside the app's release, or why it cannot."""
    running = _running_or_refuse(app)
    routed = routed_process_types(process_types, running.process_types)
    if not routed:
        raise Invalid(
            f"A canary shares the requests of a process type that takes HTTP in both releases; this release "
            f"and v{running.version} have none in common.",
            field="process_types",
        )
    if all(formation[name].quantity == 0 for name in routed if name in formation):
        raise Conflict(
            f"{', '.join(routed)} is scaled to 0: there are no requests for a canary to share.",
            field="canary_weight",
            code="scaled_to_zero",
        )
    return routed


@transaction.atomic
def canary_create(
    *,
    actor: User,
    app: App,
    image: str,
    weight: int,
    process_types: dict | None = None,
    description: str = "",
    release_command: object = None,
    release_timeout: object = None,
) -> tuple[Release, Deployment, Canary]:
    """Make release vN+1 from an image and process types, with the app's config, and deploy it as a canary
    beside the release that runs: its replicas of the process types that take HTTP get `weight` % of the
    requests until it is promoted or aborted. Its other process types stay on the release that runs."""
    canary_weight_check(weight)
    if release_command not in (None, "", []) or release_timeout is not None:
        # It would run against what the release that runs uses (its database, say) while that release serves.
        raise Invalid(
            "A canary has no release command: deploy the release without a canary to run one.",
            field="release_command",
        )
    app = _lock_app(app)
    _refuse_during_canary(app, "An app has one canary at a time:", "start the next one once this one ended.")
    _running_or_refuse(app)
    target = target_release(app)
    if target is not None and target.pk != app.current_release_id:
        raise Conflict(
            f"v{target.version} is being deployed: a canary runs beside the release that runs, so start it "
            f"once v{target.version} runs (or failed).",
            field="canary_weight",
            code="deploying",
        )
    parsed = parse_process_types(process_types)
    stored = {name: spec.as_json() for name, spec in parsed.items()}
    formation = _formation(app)
    routed = _canary_processes(app, formation, stored)
    release = Release.objects.create(
        app=app,
        version=_next_version(app),
        image=image,
        process_types=stored,
        config=_current_config(app),
        description=description,
        author=actor,
    )
    canary = Canary.objects.create(app=app, release=release, weight=weight, created_by=actor)
    running = _demand(formation, app.current_release.process_types if app.current_release else {})
    quota_check_formation(app.organization, app, {**running, **_canary_demand(app, formation, canary)}, running)
    deployment = deployment_create(actor=actor, app=app, release=release, kind=Deployment.Kind.CANARY)
    audit_record(
        actor=actor,
        action="release.canary",
        target=release,
        organization=app.organization,
        changes={
            "version": release.version,
            "image": image,
            "config_keys": sorted(release.config),
            "weight": weight,
            "process_types": routed,
        },
    )
    return release, deployment, canary


def _active_or_refuse(app: App) -> Canary:
    canary = active_canary(app)
    if canary is None:
        raise Conflict("The app has no canary.", code="no_canary")
    return canary


@transaction.atomic
def canary_weight_set(*, actor: User, app: App, weight: int) -> tuple[Canary, Deployment | None]:
    """Give the active canary another share of the requests; its replicas follow (canary_quantity)."""
    canary_weight_check(weight, field="weight")
    app = _lock_app(app)
    canary = _active_or_refuse(app)
    if canary.weight == weight:
        return canary, None
    formation = _formation(app)
    before = _canary_demand(app, formation, canary)
    changes = {"version": canary.release.version, "weight": [canary.weight, weight]}
    canary.weight = weight
    canary.save(update_fields=["weight"])
    running = _demand(formation, app.current_release.process_types if app.current_release else {})
    quota_check_formation(
        app.organization, app, {**running, **_canary_demand(app, formation, canary)}, {**running, **before}
    )
    deployment = deployment_create(actor=actor, app=app, release=canary.release, kind=Deployment.Kind.CANARY)
    audit_record(actor=actor, action="canary.update", target=canary, organization=app.organization, changes=changes)
    return canary, deployment


@transaction.atomic
def canary_promote(*, actor: User, app: App) -> tuple[Canary, Deployment]:
    """The canary's release becomes the app's release: a deployment of it in which the canary's replicas
    become the release's first replicas and the others replace the old ones start-first, as in any
    rollout. Refused while the canary's replicas are still starting: nothing could have been seen of it."""
    app = _lock_app(app)
    canary = _active_or_refuse(app)
    starting = app.deployments.filter(kind=Deployment.Kind.CANARY, state__in=Deployment.UNFINISHED).exists()
    if starting:
        raise Conflict(
            f"The canary v{canary.release.version} is still being deployed: promote it once its replicas "
            "serve, or abort it.",
            code="canary_deploying",
        )
    release = canary.release
    formation = _formation(app)
    before = _snapshot(formation)
    running = app.current_release
    previous = {
        **_demand(formation, running.process_types if running else {}),
        **_canary_demand(app, formation, canary),
    }
    formation.update(_add_formation(app, release, formation))
    quota_check_formation(app.organization, app, _demand(formation, release.process_types), previous)
    _canary_end(canary, state=Canary.State.PROMOTED, actor=actor)
    _config_replace(app, release.config)  # the same, since config changes wait for the canary to end
    deployment = deployment_create(
        actor=actor,
        app=app,
        release=release,
        kind=Deployment.Kind.PROMOTE,
        formation=_snapshot(formation),
        previous_formation=before,
    )
    audit_record(
        actor=actor,
        action="canary.promote",
        target=canary,
        organization=app.organization,
        changes={"version": release.version, "weight": canary.weight},
    )
    return canary, deployment


@transaction.atomic
def canary_abort(*, actor: User | None, app: App, reason: str = "") -> tuple[Canary, Deployment]:
    """The canary ends: its replicas leave the routes, drain and go; the app's release keeps running.
    Berth's own abort (a canary that crash-loops, worker.healing) has no actor and says why."""
    app = _lock_app(app)
    canary = _active_or_refuse(app)
    _canary_end(canary, state=Canary.State.ABORTED, actor=actor, reason=reason)
    deployment = deployment_create(actor=actor, app=app, release=canary.release, kind=Deployment.Kind.ABORT)
    if reason:
        deployment.steps.create(message=f"Berth aborts the canary: {reason}.")
    audit_record(
        actor=actor,
        action="canary.abort",
        target=canary,
        organization=app.organization,
        changes={"version": canary.release.version, "weight": canary.weight, **({"reason": reason} if reason else {})},
    )
    return canary, deployment


@transaction.atomic
def canary_failed(*, app: App, canary: Canary, reason: str) -> None:
    """Berth ends a canary whose replica could not be placed or never became healthy during a deployment
    other than its own (a scale, a heal): that deployment goes on without it."""
    _lock_app(app)
    if Canary.objects.filter(pk=canary.pk, state=Canary.State.ACTIVE).exists():
        _canary_end(canary, state=Canary.State.FAILED, actor=None, reason=reason)


def _canary_end(canary: Canary, *, state: str, actor: User | None, reason: str = "") -> None:
    canary.state, canary.ended_at, canary.ended_by, canary.reason = state, timezone.now(), actor, reason[:2000]
    canary.save(update_fields=["state", "ended_at", "ended_by", "reason"])


# --- one-off runs (docs/runs.md) ----------------------------------------------------------------


@transaction.atomic
def run_create(*, actor: User, app: App, command: object, size: object = None, timeout: object = None) -> Run:
    """Run a command once, in a container of its own from the release that runs (its image and config), at
    a size (the default one unless named), killed after `timeout` seconds; the worker starts it after
    commit. Bad input raises Invalid naming the field; an app that runs no release cannot run anything."""
    parsed = parse_run_command(command, "command")
    timeout_s = parse_timeout(timeout, "timeout")
    chosen = _run_size(size)
    app = _lock_app(app)
    if app.current_release_id is None:
        raise Conflict(
            "The app runs no release yet: a run uses the image and config of the one that runs.", code="no_release"
        )
    quota_check_run(app.organization, chosen)
    run = Run.objects.create(
        app=app,
        release_id=app.current_release_id,
        command=list(parsed),
        size=chosen,
        timeout_s=timeout_s,
        created_by=actor,
    )
    # The command may hold what a tenant would not show (a token in an argument): its first word only.
    audit_record(
        actor=actor,
        action="run.create",
        target=run,
        organization=app.organization,
        changes={"program": parsed[0][:100], "size": chosen.name, "timeout_s": timeout_s},
    )
    enqueue_on_commit(task_names.RUN, run.pk)
    return run


def _run_size(name: object) -> Size:
    if name is None:
        size = Size.objects.filter(is_default=True).first() or Size.objects.order_by("memory_mb").first()
        if size is None:
            raise Conflict("No container sizes are defined yet; an operator must add one.", code="no_sizes")
        return size
    if not isinstance(name, str) or len(name) > 40:
        raise Invalid("Give the name of a size (GET /api/v1/sizes/).", field="size")
    size = Size.objects.filter(name=name).first()
    if size is None:
        raise Invalid(f"There is no size named {name!r} (GET /api/v1/sizes/).", field="size")
    return size
