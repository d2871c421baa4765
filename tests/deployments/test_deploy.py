"""Deploying apps onto real Docker hosts: spread, health-gated rolling deploys and automatic rollback."""

import contextlib
import itertools
import secrets
import threading
import time

import docker
import pytest

from berth.applications.models import App
from berth.deployments.models import Deployment
from berth.deployments.services import config_set, formation_scale, release_create, release_rollback
from berth.fleet.models import Container, DockerHost
from tests.factories import AppFactory
from tests.fleet import WEB

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker


@pytest.fixture
def app(tenant):
    return AppFactory(organization=tenant.memberships.get().organization, name="store")


def deploy(tenant, app, image="berth-test/web:v1", replicas=None, process_types=WEB):
    release, deployment = release_create(actor=tenant, app=app, image=image, process_types=process_types)
    if replicas is not None:
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": replicas}})
    run_deployments(app)
    deployment.refresh_from_db()
    return release, deployment


def test_three_replicas_spread_over_the_hosts_and_answer(fleet, tenant, app):
    release, deployment = deploy(tenant, app, replicas=3)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    containers = live(app)
    assert sorted(c.index for c in containers) == [0, 1, 2]
    assert {c.release_id for c in containers} == {release.pk}
    per_host = sorted(sum(1 for c in containers if c.host == host) for host in fleet)
    assert per_host == [1, 2]
    for container in containers:
        assert fetch(container) == (200, "web v1\n")
        assert container.health == Container.Health.HEALTHY
    app.refresh_from_db()
    assert app.current_release == release
    assert release.__class__.objects.get(pk=release.pk).image_digest.startswith("sha256:")
    # The steps say why each host was chosen.
    steps = [s.message for d in Deployment.objects.filter(app=app) for s in d.steps.all()]
    assert sum("of this release's replicas there" in s for s in steps) == 3


def test_a_scale_out_starts_replicas_together(fleet, tenant, app, testbed_hosts):
    deploy(tenant, app)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 7}})
    run_deployments(app)
    scale = Deployment.objects.filter(app=app, kind=Deployment.Kind.SCALE).get()
    assert scale.state == Deployment.State.SUCCEEDED, scale.error
    containers = live(app)
    assert sorted(c.index for c in containers) == list(range(7))
    assert sorted(sum(1 for c in containers if c.host == host) for host in fleet) == [3, 4]
    assert all(fetch(c)[0] == 200 for c in containers)
    # Started together: some replica began starting (placed, before the engine was asked) before
    # another had become healthy; one by one, each would wait for the one before it.
    began, healthy = {}, {}
    for step in scale.steps.select_related("container"):
        if step.message.startswith("Starting web."):
            began[int(step.message.removeprefix("Starting web.").split()[0])] = step.at
        elif " is healthy " in step.message:
            healthy[step.container.index] = step.at
    spans = sorted((began[index], healthy[index]) for index in began)
    assert len(spans) == 6
    assert any(later_start < earlier_end for (_, earlier_end), (later_start, _) in itertools.pairwise(spans))
    # Each host got exactly one network for the organization, however many started at once.
    for test_host in testbed_hosts:
        client = docker.APIClient(base_url=test_host.engine_url)
        assert len(client.networks(filters={"label": f"berth.org={app.organization.slug}"})) == 1
        client.close()


def test_replicas_started_together_that_fail_are_all_removed(fleet, tenant, app):
    never = {
        "web": {"port": 8080, "health_check": {"type": "tcp", "interval_s": 0.2, "retries": 2, "start_period_s": 1}}
    }
    release_create(actor=tenant, app=app, image="berth-test/nobind:v1", process_types=never)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 4}})
    run_deployments(app)
    # The scale applies to the release on its way, whose deployment starts all four together.
    first = Deployment.objects.filter(app=app, kind=Deployment.Kind.RELEASE).get()
    assert first.state == Deployment.State.FAILED
    assert "did not become healthy" in first.error and "(and 3 more)" in first.error
    assert live(app) == []
    # Nothing runs to apply the queued scale to: it is cancelled, saying why, and the formation stays.
    scale = Deployment.objects.filter(app=app, kind=Deployment.Kind.SCALE).get()
    assert scale.state == Deployment.State.FAILED and scale.error == "v1 failed"
    assert app.formation.get().quantity == 4


def test_a_new_release_rolls_out_start_first(fleet, tenant, app):
    deploy(tenant, app, replicas=2)
    old = live(app)
    v2, deployment = deploy(tenant, app, image="berth-test/web:v2")
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    new = live(app)
    assert {c.release_id for c in new} == {v2.pk} and len(new) == 2
    assert all(fetch(c)[1] == "web v2\n" for c in new)
    assert not Container.objects.filter(pk__in=[c.pk for c in old], state__in=Container.LIVE).exists()
    messages = [s.message for s in deployment.steps.all()]
    for index in (0, 1):
        healthy = next(i for i, m in enumerate(messages) if f".web.{index}.v2." in m and "is healthy" in m)
        stopped = next(i for i, m in enumerate(messages) if m.startswith("Stopping") and f".web.{index}.v1." in m)
        assert healthy < stopped, messages


def test_an_unhealthy_release_is_rolled_back_and_old_replicas_keep_answering(fleet, tenant, app):
    v1, _ = deploy(tenant, app, replicas=2)
    old = live(app)
    answers, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            answers.extend(fetch(c)[0] for c in old)

    poller = threading.Thread(target=keep_asking)
    poller.start()
    try:
        v2, deployment = config_set(actor=tenant, app=app, values={"HEALTH": "fail"})
        run_deployments(app)
    finally:
        stop.set()
        poller.join()
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.FAILED
    assert "did not become healthy" in deployment.error and "answered 500" in deployment.error
    app.refresh_from_db()
    assert app.current_release == v1
    assert {c.pk for c in live(app)} == {c.pk for c in old}
    assert not Container.objects.filter(release=v2, state__in=Container.LIVE).exists()
    assert len(answers) > 10 and set(answers) == {200}


def test_rollback_makes_a_new_release_from_an_old_one(fleet, tenant, app):
    v1, _ = deploy(tenant, app)
    deploy(tenant, app, image="berth-test/web:v2")
    v3, deployment = release_rollback(actor=tenant, app=app, version=1)
    run_deployments(app)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.SUCCEEDED
    assert (v3.version, v3.image, v3.rollback_of) == (3, v1.image, 1)
    assert [fetch(c)[1] for c in live(app)] == ["web v1\n"]


def test_config_reaches_the_container(fleet, tenant, app):
    deploy(tenant, app)
    config_set(actor=tenant, app=app, values={"APP_GREETING": "hello there"})
    run_deployments(app)
    [container] = live(app)
    status, body = fetch(container, "/cgi-bin/env")
    assert status == 200
    assert "APP_GREETING=hello there" in body and "BERTH_RELEASE=v2" in body


def test_scale_to_zero_and_back(fleet, tenant, app):
    deploy(tenant, app, replicas=2)
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 0}})
    run_deployments(app)
    assert live(app) == []
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 1}})
    run_deployments(app)
    assert [fetch(c)[0] for c in live(app)] == [200]


def test_an_image_that_does_not_exist_fails_with_a_reason(fleet, tenant, app):
    _, deployment = deploy(tenant, app, image="berth-test/missing:v9")
    assert deployment.state == Deployment.State.FAILED
    assert "berth-test/missing:v9" in deployment.error and "could not be pulled" in deployment.error
    assert live(app) == []
    assert App.objects.get(pk=app.pk).current_release is None


def test_a_process_that_never_binds_its_port_fails(fleet, tenant, app):
    never = {
        "web": {"port": 8080, "health_check": {"type": "tcp", "interval_s": 0.2, "retries": 2, "start_period_s": 1}}
    }
    _, deployment = deploy(tenant, app, image="berth-test/nobind:v1", process_types=never)
    assert deployment.state == Deployment.State.FAILED
    assert "did not become healthy" in deployment.error
    assert live(app) == []


def test_every_container_passes_the_hardening_audit(fleet, tenant, app, testbed_hosts):
    deploy(tenant, app, replicas=2)
    for container in live(app):
        host = next(h for h in testbed_hosts if h.engine_url == container.host.engine_url)
        client = docker.APIClient(base_url=host.engine_url)
        inspected = client.inspect_container(container.docker_id)
        client.close()
        hc = inspected["HostConfig"]
        assert hc["Privileged"] is False
        assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
        assert "no-new-privileges:true" in hc["SecurityOpt"]
        assert hc["PidsLimit"] == 256
        assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 250_000_000
        assert not hc["Binds"] and not inspected["Mounts"]
        # Writable unless the process type asks for a read-only root (tests/deployments/test_hardening.py).
        assert hc["ReadonlyRootfs"] is False and not hc.get("Tmpfs")
        # An image that names its own user runs as it: Berth changes only root, and only where root is real.
        assert inspected["Config"]["User"] == "10001:10001"
        assert hc["NetworkMode"] == f"berth-org-{app.organization_id}"
        assert hc["PidMode"] == "" and hc["IpcMode"] == "private"
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
        bindings = [b for port in hc["PortBindings"].values() for b in port]
        assert bindings and all(b["HostIp"] == container.host.address for b in bindings)
        labels = inspected["Config"]["Labels"]
        assert labels["berth.org"] == "shop" and labels["berth.app"] == "store"
        assert labels["berth.process_type"] == "web" and labels["berth.index"] == str(container.index)
        assert labels["berth.release"] == "1" and labels["berth.deployment"]


@pytest.mark.parametrize("scope", ["all", "process_type", "container"])
def test_restart_replaces_containers_start_first(fleet, tenant, app, scope):
    from berth.deployments.services import app_restart

    deploy(tenant, app, replicas=2)
    app.refresh_from_db()
    before = live(app)
    target = before[0]
    kwargs = {"all": {}, "process_type": {"process_type": "web"}, "container": {"container": target}}[scope]
    deployment = app_restart(actor=tenant, app=app, **kwargs)
    run_deployments(app)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    after = live(app)
    replaced = {c.pk for c in before} - {c.pk for c in after}
    assert replaced == ({target.pk} if scope == "container" else {c.pk for c in before})
    assert len(after) == 2 and all(fetch(c)[0] == 200 for c in after)


def test_registering_a_host_checks_it_and_records_the_engine_version(testbed_hosts, transactional_db):
    from berth.fleet.services import host_register
    from worker import tasks

    h = testbed_hosts[1]
    # Registered without the worker's connection test (as bootstrap does): the heartbeat checks them.
    host = host_register(
        actor=None,
        test_connection=False,
        name="fresh",
        engine_url=h.engine_url,
        address=h.address,
        memory_mb=512,
        cpu_millis=1000,
    )
    unreachable = host_register(
        actor=None,
        test_connection=False,
        name="nowhere",
        engine_url="unix:///run/berth-testbed/none.sock",
        address="10.250.9.2",
        memory_mb=512,
        cpu_millis=1000,
    )
    tasks.check_hosts()
    host.refresh_from_db()
    unreachable.refresh_from_db()
    assert host.status == "up" and host.engine_version.startswith("20.") and host.engine_id
    assert unreachable.status == "pending" and "none.sock" in unreachable.last_error


def test_each_organization_gets_its_own_network_even_when_names_share_a_prefix(fleet, testbed_hosts):
    """Docker's network name filter matches substrings: berth-org-7 must not be taken for berth-org-71."""
    from berth.fleet.models import DockerHost
    from worker.engine import Engine

    host = DockerHost.objects.get(engine_url=testbed_hosts[0].engine_url)
    client = docker.APIClient(base_url=host.engine_url)
    try:
        client.create_network("berth-org-99071", labels={"berth.managed": "true"})
        with Engine(host) as engine:
            engine.ensure_network("berth-org-9907", {"berth.managed": "true"})
        names = {n["Name"] for n in client.networks(names=["berth-org-9907"])}
        assert {"berth-org-9907", "berth-org-99071"} <= names
    finally:
        for name in ("berth-org-9907", "berth-org-99071"):
            for network in client.networks(names=[name]):
                if network["Name"] == name:
                    client.remove_network(network["Id"])
        client.close()


def test_a_command_health_check_runs_inside_the_container(fleet, tenant, app):
    checked = {
        "web": {
            "port": 8080,
            "health_check": {
                "type": "command",
                "command": ["test", "!", "-e", "/tmp/sick"],
                "interval_s": 0.3,
                "retries": 2,
                "start_period_s": 1,
            },
        }
    }
    _, deployment = deploy(tenant, app, process_types=checked)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    assert any("health command exited 0" in s.message for s in deployment.steps.all())
    failing = {
        "web": {
            **checked["web"],
            "health_check": {**checked["web"]["health_check"], "command": ["test", "-e", "/tmp/sick"]},
        }
    }
    _, failed = deploy(tenant, app, process_types=failing)
    assert failed.state == Deployment.State.FAILED and "health command exited non-zero" in failed.error


def test_a_deploy_that_cannot_be_placed_fails_with_the_reason_and_changes_nothing(fleet, tenant, app):
    from berth.fleet.models import DockerHost

    v1, _ = deploy(tenant, app, replicas=2)
    before = {c.pk for c in live(app)}
    DockerHost.objects.update(state=DockerHost.State.CORDONED)
    _, deployment = deploy(tenant, app, image="berth-test/web:v2")
    assert deployment.state == Deployment.State.FAILED
    assert "No host is active and up: all are cordoned, draining, degraded or down." in deployment.error
    app.refresh_from_db()
    assert app.current_release == v1 and {c.pk for c in live(app)} == before


def test_a_host_nobody_has_checked_yet_is_checked_before_placement(fleet, tenant, app):
    """Bootstrap registers the local engine without a check and queues the demo deploy at once."""
    from berth.fleet.models import DockerHost

    DockerHost.objects.update(status=DockerHost.Status.PENDING, engine_version="")
    _, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    assert set(DockerHost.objects.values_list("status", flat=True)) == {DockerHost.Status.UP}
    assert all(DockerHost.objects.values_list("engine_version", flat=True))


def test_a_host_the_heartbeat_checks_while_placement_looks_is_used(fleet, tenant, app, monkeypatch):
    """`make run`'s first deploy: beat's check_hosts, in the other worker process, marks the new host
    up just after placement found none up, so no host is left unchecked; placement is tried again."""
    from berth.fleet.models import DockerHost
    from worker import deploy as worker_deploy
    from worker.reconcile import check_host

    DockerHost.objects.update(status=DockerHost.Status.PENDING, engine_version="")
    choose, calls = worker_deploy.choose_hosts, []

    def heartbeat_meanwhile(**kwargs):
        calls.append(kwargs["count"])
        try:
            return choose(**kwargs)
        finally:
            for host in DockerHost.objects.filter(status=DockerHost.Status.PENDING):
                check_host(host)  # what the heartbeat task does at that moment

    monkeypatch.setattr(worker_deploy, "choose_hosts", heartbeat_meanwhile)
    _, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    assert calls == [1, 1]


def test_a_start_makes_the_organizations_network_when_it_is_missing(fleet, tenant, app):
    """A lone start does not look the network up first (one round trip less on every deploy): the
    engine makes it when the create finds it missing, as on an organization's first start on a host
    or after a reconcile pruned its idle network."""
    _, first = deploy(tenant, app)
    assert first.state == Deployment.State.SUCCEEDED, first.error
    [container] = live(app)
    name = f"berth-org-{app.organization_id}"
    client = docker.APIClient(base_url=container.host.engine_url)
    try:
        [network] = [n for n in client.networks(names=[name]) if n["Name"] == name]
        assert network["Labels"] == {"berth.managed": "true", "berth.org": app.organization.slug}
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 0}})
        run_deployments(app)
        client.remove_network(network["Id"])  # what a prune does to an idle network
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 1}})
        run_deployments(app)
        again = Deployment.objects.filter(app=app).latest("id")
        assert again.state == Deployment.State.SUCCEEDED, again.error
        [container] = live(app)
        assert fetch(container) == (200, "web v1\n")
        assert len([n for n in client.networks(names=[name]) if n["Name"] == name]) == 1
    finally:
        client.close()


@pytest.fixture
def slow_lookup(monkeypatch, userns_host):
    """Makes the image lookup a lone start does alongside Docker's create wait 0.5 s (the create has
    long answered by then), then do `then(host)` before it looks; records the images created. The
    lookup runs alongside only on a host that remaps user namespaces (elsewhere the image's user decides
    the container's, so it is found first): the others are cordoned."""
    DockerHost.objects.exclude(pk=userns_host.pk).update(state=DockerHost.State.CORDONED)
    from worker import runtime
    from worker.engine import Engine

    created, plan = [], {}
    run, lookup = Engine.run, runtime._image_alongside

    def counting_run(self, spec):
        created.append(spec["image"])
        return run(self, spec)

    def slow(host, release, policy):
        time.sleep(0.5)
        plan["then"](host)
        return lookup(host, release, policy)

    monkeypatch.setattr(Engine, "run", counting_run)
    monkeypatch.setattr(runtime, "_image_alongside", slow)
    return created, plan


def test_an_image_the_host_lacks_is_pulled_and_the_container_created_again(fleet, tenant, app, slow_lookup):
    """The create fails at once for an image the host does not have; the lookup alongside gets it (here
    a tag stands for what a pull leaves), and the container is created again."""
    created, plan = slow_lookup
    image = f"berth-test/pulled:{secrets.token_hex(4)}"
    tagged = []

    def pull(host):
        with contextlib.closing(docker.APIClient(base_url=host.engine_url)) as client:
            client.tag("berth-test/web:v1", *image.split(":"))
        tagged.append(host.engine_url)

    plan["then"] = pull
    try:
        _, deployment = deploy(tenant, app, image=image)
        assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
        assert created == [image, image]
        [container] = live(app)
        assert fetch(container) == (200, "web v1\n")
    finally:
        for engine_url in tagged:
            with contextlib.closing(docker.APIClient(base_url=engine_url)) as client:
                client.remove_image(image)  # untags; the layers are berth-test/web:v1's


def test_a_start_that_fails_on_berths_side_leaves_no_container(fleet, tenant, app, slow_lookup, userns_host):
    """Docker started the container, then Berth's own part of the start failed: it is removed."""
    from worker.engine import EngineError

    created, plan = slow_lookup

    def fail(host):
        raise EngineError(f"looking up the image on {host.name}: the engine went away", transient=True)

    plan["then"] = fail
    _, deployment = deploy(tenant, app)
    assert deployment.state == Deployment.State.FAILED
    assert "the engine went away" in deployment.error
    assert created == ["berth-test/web:v1"]
    assert live(app) == []
    for host in DockerHost.objects.all():
        with contextlib.closing(docker.APIClient(base_url=host.engine_url)) as client:
            assert client.containers(all=True, filters={"label": f"berth.app_id={app.pk}"}) == []
