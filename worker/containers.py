"""How Berth starts a container: names, labels, environment and the hardened defaults (docs/architecture.md#containers).

Pure functions of the release, slot, size and host, so the hardening is one piece of code that
a test can read and `docker inspect` can confirm.
"""

import secrets

from berth.applications.models import Release
from berth.applications.specs import ProcessType
from berth.fleet.models import DockerHost, Size
from berth.tenancy.models import Organization

from .engine import MANAGED_LABEL

PIDS_LIMIT = 256
STOP_TIMEOUT_S = 10
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
# A read-only root keeps one writable place: small, and nothing in it can be executed or gain setuid.
TMP_OPTIONS = "rw,noexec,nosuid,size=64m"
# An image that would run as root on a host that does not remap user namespaces runs as nobody:nogroup
# instead. 65534 is the overflow uid and gid the kernel itself shows for ids it cannot map, normally owns
# no file on a host, and is "nobody" in Debian, Alpine and most distributions: unprivileged everywhere.
UNPRIVILEGED_USER = "65534:65534"


def runs_as_root(image_user: str) -> bool:
    """Whether an image's configured user ("", "0", "root", "0:0", "root:root", …) is root: an image that
    names no user runs as root, and the group does not matter, only the uid."""
    return image_user.split(":", 1)[0] in {"", "0", "root"}


def container_user(image_user: str, host: DockerHost) -> str | None:
    """The user a container runs as; None leaves the image's own. Root stays root only where the host's
    engine remaps it to an unprivileged host uid; a release never sets a user itself."""
    if runs_as_root(image_user) and not host.userns_remap:
        return UNPRIVILEGED_USER
    return None


def network_name(organization_id: int) -> str:
    """One bridge per organization, so one tenant's containers cannot reach another's."""
    return f"berth-org-{organization_id}"


def network_labels(organization: Organization) -> dict:
    return {MANAGED_LABEL: "true", "berth.org": organization.slug}


def labels_for(
    *, release: Release, process: ProcessType, index: int, size: Size, deployment_id: int | None, canary: bool = False
) -> dict:
    """Labels that say whose a container is: enough to rebuild all observed state (docs/architecture.md#invariants)."""
    app = release.app
    return {
        MANAGED_LABEL: "true",
        "berth.org": app.organization.slug,
        "berth.org_id": str(app.organization_id),
        "berth.app": app.name,
        "berth.app_id": str(app.pk),
        "berth.release": str(release.version),
        "berth.release_id": str(release.pk),
        "berth.process_type": process.name,
        "berth.index": str(index),
        "berth.size": size.name,
        "berth.deployment": str(deployment_id or ""),
        # A replica of the app's canary ("true"), or of its release (""): a slot of one is not one of the other.
        "berth.canary": "true" if canary else "",
    }


def container_spec(
    *,
    release: Release,
    process: ProcessType,
    index: int,
    size: Size,
    host: DockerHost,
    deployment_id: int | None,
    image_user: str,
    canary: bool = False,
) -> dict:
    """`image_user` is the user the release's image says it runs as, on this host (LocalImage.user)."""
    app = release.app
    name = f"{app.organization.slug}.{app.name}.{process.name}.{index}.v{release.version}.{secrets.token_hex(3)}"
    environment = {
        **release.config,
        "BERTH_APP": app.name,
        "BERTH_RELEASE": f"v{release.version}",
        "BERTH_PROCESS_TYPE": process.name,
        "BERTH_INDEX": str(index),
    }
    ports = []
    port_bindings = {}
    if process.port:
        environment["PORT"] = str(process.port)
        ports = [process.port]
        # Published on the host's own address only, on a port the engine picks.
        port_bindings = {process.port: (host.address, None)}
    return {
        "name": name,
        "image": release.image,
        "user": container_user(image_user, host),
        "command": list(process.command),
        "environment": environment,
        "labels": labels_for(
            release=release, process=process, index=index, size=size, deployment_id=deployment_id, canary=canary
        ),
        "ports": ports,
        "network": network_name(app.organization_id),
        "network_labels": network_labels(app.organization),
        "host_config": {
            "port_bindings": port_bindings,
            "network_mode": network_name(app.organization_id),
            "privileged": False,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": PIDS_LIMIT,
            "mem_limit": size.memory_mb * 1024 * 1024,
            "memswap_limit": size.memory_mb * 1024 * 1024,
            "nano_cpus": size.cpu_millis * 1_000_000,
            "log_config": {"Type": "json-file", "Config": LOG_OPTIONS},
            "restart_policy": {"Name": "no"},  # Berth replaces crashed containers itself, with back-off
            "ipc_mode": "private",
            "init": False,
            **_filesystem(process),
        },
    }


def _filesystem(process: ProcessType) -> dict:
    if not process.read_only:
        return {}
    return {"read_only": True, "tmpfs": {"/tmp": TMP_OPTIONS}}  # noqa: S108 - the container's own /tmp, a tmpfs
