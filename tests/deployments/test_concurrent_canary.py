"""Several clients start, reweigh, promote and abort canaries while others deploy, scale and change config,
at random moments, with real workers: every answer is one the rules allow, and once every deployment has
finished, exactly the desired state runs: the release's formation, and the active canary's replicas beside
it or none (docs/deploys.md#canary-releases)."""

import random
import threading
import time

import pytest
from django.db import connection

from berth.deployments.canary import canary_quantity
from berth.deployments.models import Canary, Deployment
from berth.deployments.selectors import active_canary, target_release
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, MembershipFactory
from tests.fleet import WEB
from tests.timing import wait_for

from .helpers import fetch, live
from .test_concurrent_changes import ANSWERS, NEVER_HEALTHY

pytestmark = pytest.mark.docker

CLIENTS = 3
CHANGES_EACH = 8
SEED = 6


def a_change(client, base: str, rng: random.Random):
    """One change a user might make, with the status codes the rules allow for it whatever else happens."""
    # Canaries are refused while a release deploys, and promotions while the canary deploys: releases and
    # config changes are rarer here than in a user's life, or no canary would ever start.
    kinds = (
        ["canary"] * 4 + ["promote"] * 3 + ["weight", "weight", "abort", "abort", "scale", "scale", "release", "config"]
    )
    kind = rng.choice(kinds)
    if kind == "canary":
        if rng.random() < 0.2:  # now and then a canary that never gets healthy
            body = {"image": "berth-test/nobind:v1", "process_types": NEVER_HEALTHY}
        else:
            body = {"image": rng.choice(list(ANSWERS)), "process_types": WEB}
        body["canary_weight"] = rng.choice([10, 25, 50, 75])
        # 409: a canary runs already, or a release is being deployed (promoted, say).
        return kind, client.post(f"{base}/releases/", body, format="json"), {201, 409}
    if kind == "weight":
        body = {"weight": rng.choice([10, 25, 50, 75])}
        return kind, client.patch(f"{base}/canary/", body, format="json"), {200, 202, 409}
    if kind in ("promote", "abort"):
        return kind, client.post(f"{base}/canary/{kind}/"), {202, 409}
    if kind == "scale":
        body = {"formation": {"web": {"quantity": rng.randint(1, 3)}}}
        return kind, client.patch(f"{base}/formation/", body, format="json"), {202}
    if kind == "release":
        body = {"image": rng.choice(list(ANSWERS)), "process_types": WEB}
        return kind, client.post(f"{base}/releases/", body, format="json"), {201, 409}
    body = {"config": {f"APP_{rng.choice('AB')}": str(rng.randrange(1000))}}
    return kind, client.patch(f"{base}/config/", body, format="json"), {202, 409}


def test_random_canary_changes_from_several_clients_end_in_the_desired_state(fleet, tenant, workers):
    organization = tenant.memberships.get().organization
    app = AppFactory(organization=organization, name="birds")
    base = f"/api/v1/orgs/{organization.slug}/apps/{app.name}"
    people = [tenant] + [MembershipFactory(organization=organization, role=Role.DEVELOPER).user for _ in range(2)]
    workers(), workers()
    first = token_client(tenant).post(f"{base}/releases/", {"image": "berth-test/web:v1", "process_types": WEB})
    assert first.status_code == 201
    wait_for(lambda: app.deployments.filter(state="succeeded").exists(), timeout=60, interval=0.2)

    made, errors = [], []

    def client_session(number: int):
        rng = random.Random(SEED * 100 + number)
        client = token_client(people[number])
        try:
            for _ in range(CHANGES_EACH):
                time.sleep(rng.uniform(0.5, 3.0))
                kind, response, expected = a_change(client, base, rng)
                made.append((kind, response.status_code, response.json().get("error", "")))
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
    print("\nchanges made:", made)

    def settled():
        return not Deployment.objects.filter(app=app, state__in=Deployment.UNFINISHED).exists()

    wait_for(settled, timeout=300, interval=0.5)
    app.refresh_from_db()
    running = app.current_release
    deployments = list(Deployment.objects.filter(app=app).order_by("id"))
    story = [(d.id, d.kind, d.release.version, d.state, d.error[:80]) for d in deployments]
    canaries = [(c.release.version, c.weight, c.state, c.reason[:60]) for c in Canary.objects.filter(app=app)]
    print("deployments:", story, "\ncanaries:", canaries)

    assert target_release(app) == running, story
    wanted = app.formation.get(process_type="web").quantity
    containers = live(app)
    main = [c for c in containers if not c.canary]
    assert sorted(c.index for c in main) == list(range(wanted)), story
    assert {c.release_id for c in main} == {running.pk}, story
    canary = active_canary(app)
    replicas = [c for c in containers if c.canary]
    if canary is None:
        assert replicas == [], (story, canaries)
    else:
        assert sorted(c.index for c in replicas) == list(range(canary_quantity(wanted, canary.weight))), story
        assert {c.release_id for c in replicas} == {canary.release_id}, story
        assert [fetch(c)[1].strip() for c in replicas] == [ANSWERS[canary.release.image]] * len(replicas)
    assert all(c.health == "healthy" for c in containers)
    assert [fetch(c)[1].strip() for c in main] == [ANSWERS[running.image]] * wanted

    assert all(d.state in ("succeeded", "failed") for d in deployments)
    assert all(d.error for d in deployments if d.state == "failed")
    # Only a canary's own deployment fails for its replicas; a scale or an abort that met them goes on.
    assert all(d.kind == "canary" for d in deployments if d.state == "failed"), story
    assert all(c.ended_at for c in Canary.objects.filter(app=app).exclude(state=Canary.State.ACTIVE))
    assert Canary.objects.filter(app=app, state=Canary.State.ACTIVE).count() <= 1
    # The seed's changes include canaries started, and promoted or aborted.
    kinds = {d.kind for d in deployments}
    assert "canary" in kinds and kinds & {"promote", "abort"}, story
