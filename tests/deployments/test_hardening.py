"""Images that run as root, and read-only process types, on real engines: one that remaps user namespaces
(root in a container is host uid 100000) and ones that do not (root images run as uid 65534 there)."""

import contextlib
import json
from pathlib import Path

import docker
import pytest
from django.test import Client

from berth.core.crypto import encrypt
from berth.deployments.models import Deployment
from berth.deployments.services import formation_scale, release_create
from berth.fleet.credentials import CONNECTION_FIELDS
from berth.fleet.models import DockerHost
from tests.conftest import token_client
from tests.factories import AppFactory, UserFactory
from tests.fleet import WEB
from worker.tasks import check_engine

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker

ROOT_IMAGE = "berth-test/root:v1"  # berth-test/web:v1 with USER 0:0
WEB_USER = 10001  # berth-test/web:v1's own user


@pytest.fixture
def app(tenant):
    return AppFactory(organization=tenant.memberships.get().organization, name="store")


def deploy(tenant, app, image, replicas=None, process_types=WEB):
    _, deployment = release_create(actor=tenant, app=app, image=image, process_types=process_types)
    if replicas is not None:
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": replicas}})
    run_deployments(app)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    return deployment


def cordon(*hosts) -> None:
    DockerHost.objects.filter(pk__in=[h.pk for h in hosts]).update(state=DockerHost.State.CORDONED)


def inspect(container) -> dict:
    with contextlib.closing(docker.APIClient(base_url=container.host.engine_url)) as client:
        return client.inspect_container(container.docker_id)


def host_uid(container) -> int:
    """The uid the container's first process runs as on the host: the test bed's engines share this
    machine's PID namespace, so /proc shows it as the kernel sees it."""
    status = Path(f"/proc/{inspect(container)['State']['Pid']}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert len(set(uids)) == 1, uids  # real, effective, saved and filesystem uid alike
    return int(uids[0])


def remapped_root() -> int:
    """The host uid root in a container becomes under --userns-remap=default: dockremap's first subordinate uid."""
    for line in Path("/etc/subuid").read_text().splitlines():
        name, start, _ = line.split(":")
        if name == "dockremap":
            return int(start)
    raise AssertionError("no dockremap range in /etc/subuid")


def exec_in(container, *command: str) -> tuple[int, str]:
    with contextlib.closing(docker.APIClient(base_url=container.host.engine_url)) as client:
        exec_id = client.exec_create(container.docker_id, list(command))["Id"]
        output = client.exec_start(exec_id).decode(errors="replace")
        return client.exec_inspect(exec_id)["ExitCode"], output


def test_a_root_image_runs_as_an_unprivileged_user_on_a_host_that_does_not_remap(userns_host, tenant, app):
    cordon(userns_host)
    deploy(tenant, app, ROOT_IMAGE)
    [container] = live(app)
    assert not container.host.userns_remap
    assert host_uid(container) == 65534
    assert fetch(container) == (200, "root v1\n")


def test_a_root_image_runs_as_root_remapped_on_a_host_that_remaps(userns_host, tenant, app):
    cordon(*DockerHost.objects.exclude(pk=userns_host.pk))
    deploy(tenant, app, ROOT_IMAGE)
    [container] = live(app)
    assert container.host == userns_host and container.host.userns_remap  # as the heartbeat detected
    assert host_uid(container) == remapped_root() != 0
    assert fetch(container) == (200, "root v1\n")


def test_placement_puts_a_root_image_on_hosts_that_remap(userns_host, tenant, app):
    deployment = deploy(tenant, app, ROOT_IMAGE, replicas=2)
    containers = live(app)
    assert len(containers) == 2
    assert {c.host for c in containers} == {userns_host}
    assert {host_uid(c) for c in containers} == {remapped_root()}
    assert all(fetch(c) == (200, "root v1\n") for c in containers)
    steps = [s.message for s in deployment.steps.all()]
    assert sum("the image runs as root, which this host remaps to an unprivileged user" in s for s in steps) == 2


def test_an_image_with_its_own_user_keeps_it_and_spreads_over_every_host(userns_host, tenant, app):
    hosts = list(DockerHost.objects.all())
    deploy(tenant, app, "berth-test/web:v1", replicas=len(hosts))
    containers = live(app)
    assert sorted(c.host.pk for c in containers) == sorted(h.pk for h in hosts)
    for container in containers:
        assert inspect(container)["Config"]["User"] == f"{WEB_USER}:{WEB_USER}"
        # What Berth detected of each host is what the kernel does with the image's user there.
        assert host_uid(container) == (remapped_root() + WEB_USER if container.host.userns_remap else WEB_USER)
        assert fetch(container) == (200, "web v1\n")


def test_a_read_only_process_type_has_a_read_only_root_and_a_writable_tmp(fleet, tenant, app):
    deploy(tenant, app, "berth-test/web:v1", process_types={"web": {**WEB["web"], "read_only": True}})
    [container] = live(app)
    host_config = inspect(container)["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=64m"}
    code, output = exec_in(container, "touch", "/www/written")
    assert code != 0 and "Read-only file system" in output
    assert exec_in(container, "touch", "/tmp/written") == (0, "")
    # Nothing written there can be run.
    code, output = exec_in(container, "sh", "-c", "cp /bin/busybox /tmp/busybox && /tmp/busybox true")
    assert code != 0 and "Permission denied" in output
    assert fetch(container, "/cgi-bin/health") == (200, "ok\n")


def test_operators_see_which_engines_remap_user_namespaces(userns_host):
    hosts = DockerHost.objects.all()
    assert userns_host.userns_remap and not any(h.userns_remap for h in hosts if h.pk != userns_host.pk)
    shown = token_client(UserFactory(is_staff=True)).get("/api/v1/fleet/hosts/").json()
    rows = shown["results"] if isinstance(shown, dict) else shown
    assert {row["name"]: row["userns_remap"] for row in rows} == {h.name: h.pk == userns_host.pk for h in hosts}
    console = Client()
    console.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = console.get("/console/fleet/dockerhost/").content.decode()
    assert "Remaps user namespaces" in page and "icon-yes" in page and "icon-no" in page
    detail = console.get(f"/console/fleet/dockerhost/{userns_host.pk}/change/").content.decode()
    assert "Remaps user namespaces" in detail and "icon-yes" in detail
    # Registering a host asks the worker the same question of the engine.
    fields = dict.fromkeys(CONNECTION_FIELDS, "")
    assert check_engine(encrypt(json.dumps(fields | {"engine_url": userns_host.engine_url})))["userns_remap"] is True
    plain = hosts.exclude(pk=userns_host.pk).first()
    assert check_engine(encrypt(json.dumps(fields | {"engine_url": plain.engine_url})))["userns_remap"] is False
