"""How Berth starts a container: names, labels, environment and the hardened defaults (DESIGN §5).

Pure functions of the release, slot, size and host, so the hardening is one piece of code that
a test can read and `docker inspect` can confirm.
"""

import secrets

from berth.applications.models import Release
from berth.applications.specs import ProcessType
from berth.fleet.models import DockerHost, Size

from .engine import MANAGED_LABEL

PIDS_LIMIT = 256
STOP_TIMEOUT_S = 10
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}


def network_name(organization_id: int) -> str:
    """One bridge per organization, so one tenant's containers cannot reach another's."""
    return f"berth-org-{organization_id}"


def network_labels(organization) -> dict:
    return {MANAGED_LABEL: "true", "berth.org": organization.slug}


def labels_for(*, release: Release, process: ProcessType, index: int, size: Size, deployment_id: int | None) -> dict:
    """Labels that say whose a container is: enough to rebuild all observed state (DESIGN §4)."""
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
    }


def container_spec(
    *, release: Release, process: ProcessType, index: int, size: Size, host: DockerHost, deployment_id: int | None
) -> dict:
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
        "command": list(process.command),
        "environment": environment,
        "labels": labels_for(release=release, process=process, index=index, size=size, deployment_id=deployment_id),
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
        },
    }
