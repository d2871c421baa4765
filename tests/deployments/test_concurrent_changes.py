"""Several clients change one app at random moments while real workers deploy: when every deployment
has finished, exactly the containers of the desired release and formation run, and the history of
releases and deployments explains how the app got there."""

import random
import threading
import time

import pytest
from django.db import connection

from berth.applications.models import ConfigVar, Release
from berth.deployments.models import Deployment
from berth.deployments.selectors import target_release
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, MembershipFactory
from tests.fleet import WEB
from tests.timing import wait_for

from .helpers import fetch, live

pytestmark = pytest.mark.docker

CLIENTS = 3
CHANGES_EACH = 6
SEED = 9
NEVER_HEALTHY = {
    "web": {"port": 8080, "health_check": {"type": "tcp", "interval_s": 0.2, "retries": 2, "start_period_s": 1}}
}
ANSWERS = {"berth-test/web:v1": "web v1", "berth-test/web:v2": "web v2"}


def a_change(client, base: str, rng: random.Random, versions: list[int]):
    """One change a user might make, with the status codes it may answer."""
    kind = rng.choice(["release", "release", "config", "scale", "scale", "rollback"])
    if kind == "release":
        if rng.random() < 0.2:  # now and then a release that never gets healthy
            body = {"image": "berth-test/nobind:v1", "process_types": NEVER_HEALTHY}
        else:
            body = {"image": rng.choice(list(ANSWERS)), "process_types": WEB}
        return kind, client.post(f"{base}/releases/", body, format="json"), {201}
    if kind == "config":
        body = {"config": {f"APP_{rng.choice('ABC')}": str(rng.randrange(1000))}}
        return kind, client.patch(f"{base}/config/", body, format="json"), {202}
    if kind == "scale":
        body = {"formation": {"web": {"quantity": rng.randint(1, 3)}}}
        return kind, client.patch(f"{base}/formation/", body, format="json"), {202}
    body = {"version": rng.choice(versions)}
    return kind, client.post(f"{base}/releases/rollback/", body, format="json"), {201}


def test_random_changes_from_several_clients_end_in_the_desired_state(fleet, tenant, workers):
    organization = tenant.memberships.get().organization
    app = AppFactory(organization=organization, name="busy")
    base = f"/api/v1/orgs/{organization.slug}/apps/{app.name}"
    people = [tenant] + [MembershipFactory(organization=organization, role=Role.DEVELOPER).user for _ in range(2)]
    workers(), workers()  # two workers: one app's deployments still run one at a time, in order
    first = token_client(tenant).post(f"{base}/releases/", {"image": "berth-test/web:v1", "process_types": WEB})
    assert first.status_code == 201

    made, errors = [], []

    def client_session(number: int):
        rng = random.Random(SEED * 100 + number)
        client = token_client(people[number])
        try:
            for _ in range(CHANGES_EACH):
                time.sleep(rng.uniform(0, 0.8))
                versions = list(Release.objects.filter(app=app).values_list("version", flat=True))
                kind, response, expected = a_change(client, base, rng, versions)
                made.append(kind)
                if response.status_code not in expected:
                    errors.append((kind, response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=client_session, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    def settled():
        return not Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED).exists()

    wait_for(settled, timeout=240, interval=0.5)
    app.refresh_from_db()
    running = app.current_release
    deployments = list(Deployment.objects.filter(app=app).order_by("id"))
    story = [(d.id, d.kind, d.release.version, d.state, d.error[:80]) for d in deployments]

    # The desired state: nothing is on its way, so the target is the release that runs, with its config.
    assert target_release(app) == running, story
    assert dict(ConfigVar.objects.filter(app=app).values_list("key", "value")) == running.config
    # Exactly that release and formation runs, and answers.
    wanted = app.formation.get(process_type="web").quantity
    containers = live(app)
    assert sorted(c.index for c in containers) == list(range(wanted)), story
    assert {c.release_id for c in containers} == {running.pk}, story
    assert all(c.health == "healthy" for c in containers)
    assert [fetch(c)[1].strip() for c in containers] == [ANSWERS[running.image]] * wanted
    environment = fetch(containers[0], "/cgi-bin/env")[1]
    assert all(f"{key}={value}" in environment for key, value in running.config.items())

    # The history explains it: every deployment ended, each failure says why, and the release that runs
    # is the one the newest successful deployment moved to.
    assert all(d.state in ("succeeded", "failed") for d in deployments)
    assert all(d.error for d in deployments if d.state == "failed")
    succeeded = [d for d in deployments if d.state == "succeeded"]
    assert succeeded[-1].release_id == running.pk, story
    for deployment in succeeded:
        last = deployment.steps.order_by("at", "id").last().message
        assert last == f"Done: {app.name} runs v{deployment.release.version}.", story
    assert not Release.objects.filter(app=app, deployments__isnull=True).exists()
    assert len(made) == CLIENTS * CHANGES_EACH
    # The seed's changes include releases that fail, and changes queued behind them.
    assert any(d.state == "failed" for d in deployments), story
