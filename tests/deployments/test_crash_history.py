"""Crash history (issue 9): each process type's recent exits, with exit code, OOM kill, when it finished,
its release and the deployment that replaced it, at /apps/{app}/containers/exits/."""

from datetime import timedelta

import docker
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from berth.applications.models import Release
from berth.deployments.models import Deployment
from berth.deployments.services import config_set, formation_scale, release_create
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, ContainerFactory, HostFactory, SizeFactory
from tests.timing import wait_for
from worker.engine import parse_docker_time

from .helpers import live, run_deployments
from .test_self_heal import heal

EXITS = "/api/v1/orgs/{org}/apps/{app}/containers/exits/"
# Alive at once, and nothing else to wait for: the exits are what the test is about.
QUICK = {"min_ready_s": 0}
PROCESS_TYPES = {
    # berth-test/crash serves for CRASH_AFTER seconds, then exits with status 3.
    "web": {
        "port": 8080,
        "health_check": {"type": "http", "path": "/cgi-bin/health", "interval_s": 0.3, "start_period_s": 3},
        **QUICK,
    },
    # Fills 128 MB in a 64 MB size: the kernel's OOM killer ends it (Docker says 137 and OOMKilled).
    "hog": {
        "command": ["sh", "-c", "sleep 3; exec dd if=/dev/zero of=/dev/null bs=128M count=1"],
        "port": None,
        "health_check": {"type": "none"},
        **QUICK,
    },
    # Runs until the test kills it with `docker kill` (SIGKILL: 137).
    "idle": {"command": ["sleep", "600"], "port": None, "health_check": {"type": "none"}, **QUICK},
}


def docker_state(container) -> dict:
    client = docker.APIClient(base_url=container.host.engine_url)
    state = client.inspect_container(container.docker_id)["State"]
    client.close()
    return state


@pytest.mark.docker
def test_real_crashes_an_oom_kill_and_a_kill_are_listed_with_what_replaced_them(tenant, fleet):
    app = AppFactory(organization=tenant.memberships.get().organization, name="flaky")
    config_set(actor=tenant, app=app, values={"CRASH_AFTER": "3"})
    release_create(actor=tenant, app=app, image="berth-test/crash:v1", process_types=PROCESS_TYPES)
    formation_scale(actor=tenant, app=app, changes={name: {"quantity": 1} for name in PROCESS_TYPES})
    run_deployments(app)
    first = {c.process_type: c for c in live(app)}
    assert set(first) == set(PROCESS_TYPES)
    wait_for(lambda: not any(docker_state(first[name])["Running"] for name in ("web", "hog")), timeout=30)
    client = docker.APIClient(base_url=first["idle"].host.engine_url)
    client.kill(first["idle"].docker_id)
    client.close()
    states = {name: docker_state(container) for name, container in first.items()}
    assert (states["hog"]["ExitCode"], states["hog"]["OOMKilled"]) == (137, True)  # a real OOM kill
    heal(app)  # what the events watcher makes the worker do: the exits are recorded, each slot replaced at once
    healing = Deployment.objects.filter(app=app, kind=Deployment.Kind.HEAL).earliest("id")

    body = token_client(tenant).get(EXITS.format(org="shop", app="flaky")).json()
    exits = body["exits"]
    finished = {name: parse_docker_time(state["FinishedAt"]) for name, state in states.items()}
    newest_first = sorted(finished, key=finished.get, reverse=True)
    assert [e["process_type"] for e in exits] == newest_first
    by_type = {e["process_type"]: e for e in exits}
    assert {name: (e["exit_code"], e["oom_killed"]) for name, e in by_type.items()} == {
        "web": (3, False),
        "hog": (137, True),
        "idle": (137, False),
    }
    for name, e in by_type.items():
        container = first[name]
        assert (e["id"], e["name"], e["index"], e["state"]) == (container.pk, container.name, 0, "exited")
        assert (e["host"], e["release"]) == (container.host.name, 1)
        assert abs(parse_docker_time(e["finished_at"]) - finished[name]) < timedelta(milliseconds=1)
        started = parse_docker_time(states[name]["StartedAt"])
        assert abs(float(e["ran_seconds"]) - (finished[name] - started).total_seconds()) < 0.002
        assert e["replaced_by"]["id"] == healing.pk and e["replaced_by"]["kind"] == "heal"
    # The crash and the OOM kill came after about 3 s of running.
    assert 2.5 < float(by_type["web"]["ran_seconds"]) < 8 and 2.5 < float(by_type["hog"]["ran_seconds"]) < 8


# --- the selector's rules, on rows as the worker writes them --------------------------------------------------


@pytest.fixture
def slots(organization, members):
    """An app with rows of every kind of end, and a helper that adds a container to a slot."""
    app = AppFactory(organization=organization, name="shop")
    release = Release.objects.create(app=app, version=1, image="x", process_types={}, config={})
    host, size = HostFactory(name="host-a"), SizeFactory()
    now = timezone.now()

    def container(process_type="web", index=0, *, state, ago=None, ran=60.0, deployment=None, **fields):
        finished = None if ago is None else now - timedelta(seconds=ago)
        return ContainerFactory(
            host=host,
            app=app,
            release=release,
            size=size,
            process_type=process_type,
            index=index,
            state=state,
            started_at=None if finished is None else finished - timedelta(seconds=ran),
            finished_at=finished,
            deployment=deployment,
            created_at=now - timedelta(seconds=(ago or 0) + ran + 1),
            **fields,
        )

    return {"app": app, "release": release, "container": container, "now": now}


def heal_deployment(slots):
    return Deployment.objects.create(app=slots["app"], release=slots["release"], kind=Deployment.Kind.HEAL)


@pytest.mark.django_db
def test_only_exits_and_losses_of_the_last_day_are_listed_newest_first(slots, owner_client):
    c = slots["container"]
    crashed = c(state="exited", ago=60, exit_code=1)
    lost = c("worker", state="lost", ago=30)
    c(state="exited", ago=25 * 3600, exit_code=1)  # more than a day ago
    c(state="removed", ago=10, exit_code=0)  # stopped by Berth: not an exit
    c("web", 1, state="running")
    body = owner_client.get(EXITS.format(org="acme", app="shop")).json()
    assert [(e["id"], e["state"]) for e in body["exits"]] == [(lost.pk, "lost"), (crashed.pk, "exited")]
    assert body["per_process_type"] == 50
    assert body["exits"][1]["ran_seconds"] == "60.000"


@pytest.mark.django_db
def test_the_replacement_is_the_deployment_of_the_next_container_in_the_same_slot(slots, owner_client):
    c = slots["container"]
    healing, later = heal_deployment(slots), heal_deployment(slots)
    first = c(state="exited", ago=300, exit_code=3)
    second = c(state="exited", ago=200, exit_code=3, deployment=healing)  # replaced the first
    c(state="running", ago=None, deployment=later)  # replaced the second
    c("web", 1, state="running", deployment=heal_deployment(slots))  # another slot: replaces nothing
    alone = c("worker", state="exited", ago=100, exit_code=137, oom_killed=True)  # not replaced yet
    exits = owner_client.get(EXITS.format(org="acme", app="shop")).json()["exits"]
    replaced = {e["id"]: (e["replaced_by"] or {}).get("id") for e in exits}
    assert replaced == {first.pk: healing.pk, second.pk: later.pk, alone.pk: None}
    assert [e["oom_killed"] for e in exits if e["id"] == alone.pk] == [True]


@pytest.mark.django_db
def test_at_most_50_exits_per_process_type_in_one_query_whatever_their_number(slots, members):
    c = slots["container"]
    client = token_client(members[Role.VIEWER])  # whoever may read containers
    url = EXITS.format(org="acme", app="shop")
    c("worker", state="exited", ago=10, exit_code=1)
    client.get(url)  # the token's first use writes its last-used time
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(url).json()["exits"]) == 1
    for n in range(60):
        c(state="exited", ago=100 + n, exit_code=1, deployment=heal_deployment(slots))
    with CaptureQueriesContext(connection) as many:
        exits = client.get(url).json()["exits"]
    assert len(many) == len(one)
    assert [e["process_type"] for e in exits].count("web") == 50 and len(exits) == 51


@pytest.mark.django_db
def test_another_tenants_exits_are_a_404(slots, outsider):
    slots["container"](state="exited", ago=10, exit_code=1)
    response = token_client(outsider).get(EXITS.format(org="acme", app="shop"))
    assert response.status_code == 404
