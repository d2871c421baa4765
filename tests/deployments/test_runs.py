"""One-off runs on real engines (docs/runs.md): the container is hardened and billed like any other, killed at
its timeout, its output reaches the logs and its exit code the API; a worker that dies mid-run is taken over,
and no reconcile, heal or converge takes a run for a replica."""

import contextlib
import threading
from decimal import Decimal

import docker
import pytest
from django.db import connection
from django.utils import timezone

from berth.billing.models import UsageRecord
from berth.billing.services import size_price_set
from berth.deployments.models import Deployment, Run
from berth.deployments.services import formation_scale, release_create, run_create
from berth.fleet.models import Container, Size
from berth.logs import store
from tests.conftest import token_client
from tests.factories import AppFactory
from tests.fleet import WEB
from tests.timing import wait_for
from worker import fleet_health, healing, reconcile, runs

from .helpers import fetch, live, run_deployments

pytestmark = pytest.mark.docker


@pytest.fixture
def app(tenant):
    app = AppFactory(organization=tenant.memberships.get().organization, name="store")
    store.client().delete(store.stream_key(app.pk))  # ids repeat from test to test
    yield app
    store.client().delete(store.stream_key(app.pk))


def deploy(tenant, app, process_types=WEB, **release):
    _, deployment = release_create(
        actor=tenant, app=app, image=release.pop("image", "berth-test/web:v1"), process_types=process_types, **release
    )
    run_deployments(app)
    deployment.refresh_from_db()
    return deployment


def inspect(container: Container) -> dict | None:
    with contextlib.closing(docker.APIClient(base_url=container.host.engine_url)) as client:
        try:
            return client.inspect_container(container.docker_id)
        except docker.errors.NotFound:
            return None


def run_now(tenant, app, command, **options) -> Run:
    """Start a run and carry it out in this process, as the worker's task does; the run as it ended."""
    run = run_create(actor=tenant, app=app, command=command, **options)
    runs.run_once(run.pk)
    run.refresh_from_db()
    return run


@contextlib.contextmanager
def running_in_background(run_id: int):
    """Carry the run out in a thread of this process (a worker's), while the test looks at it."""
    thread = threading.Thread(target=_run_and_close, args=(run_id,))
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=60)


def _run_and_close(run_id: int) -> None:
    try:
        runs.run_once(run_id)
    finally:
        connection.close()


def run_container(run_id: int) -> Container | None:
    return Container.objects.filter(process_type="run", index=run_id).select_related("host").first()


def test_a_run_prints_to_the_logs_and_the_api_returns_its_exit_code(fleet, tenant, app):
    deploy(tenant, app)
    run = run_now(tenant, app, ["sh", "-c", "echo to stdout; echo to stderr >&2; echo $BERTH_APP; exit 3"])

    assert (run.state, run.exit_code) == (Run.State.FAILED, 3)
    body = token_client(tenant).get(f"/api/v1/orgs/shop/apps/store/runs/{run.pk}/").json()
    assert body["state"] == "failed" and body["exit_code"] == 3 and body["process"] == f"run.{run.pk}"
    printed = [line for line in body["output"] if line["source"] == "app"]
    # Every line, once, with the stream it went to, in Docker's time order (which is each stream's own order;
    # across streams it is the order the engine read them in); the config reached it.
    assert [line["line"] for line in printed if line["stream"] == "stdout"] == ["to stdout", "store"]
    assert [line["line"] for line in printed if line["stream"] == "stderr"] == ["to stderr"]
    assert len(printed) == 3 and [line["time"] for line in printed] == sorted(line["time"] for line in printed)
    said = [line["line"] for line in body["output"] if line["source"] == "berth"]
    assert said[0].startswith("Starting sh -c echo to stdout") and said[-1] == "Exited with code 3."
    assert all(line["process"] == f"run.{run.pk}" and line["process_type"] == "run" for line in body["output"])
    # The container is gone from its host; its row keeps the host's times and the exit code.
    container = run.container
    assert container.state == Container.State.REMOVED and container.exit_code == 3
    assert inspect(container) is None
    # As the host reported them: for a process that ends at once, Docker's FinishedAt may even precede its
    # StartedAt by a fraction of a millisecond (then the ledger bills it nothing).
    assert run.started_at == container.started_at and run.finished_at == container.finished_at
    assert run.started_at is not None and run.finished_at is not None


def test_a_run_that_succeeds_and_the_list_of_runs(fleet, tenant, app):
    deploy(tenant, app)
    first = run_now(tenant, app, "echo one")
    second = run_now(tenant, app, "true")
    assert (first.state, first.exit_code, second.state, second.exit_code) == ("succeeded", 0, "succeeded", 0)
    listed = token_client(tenant).get("/api/v1/orgs/shop/apps/store/runs/").json()["results"]
    assert [r["id"] for r in listed] == [second.pk, first.pk]
    assert listed[1]["command"] == ["echo", "one"] and listed[1]["release"] == 1 and listed[1]["size"] == "small"


def test_a_runs_container_is_hardened_like_any_other(fleet, tenant, app):
    read_only = {"web": {**WEB["web"], "read_only": True}}
    deploy(tenant, app, process_types=read_only)
    # Its root is read-only (the touch of / fails), /tmp is writable.
    command = ["sh", "-c", "touch /tmp/ok && ! touch /ok 2>/dev/null && sleep 3"]
    run = run_create(actor=tenant, app=app, command=command)
    with running_in_background(run.pk):
        container = wait_for(lambda: run_container(run.pk))
        inspected = inspect(container)
    run.refresh_from_db()
    assert (run.state, run.exit_code) == (Run.State.SUCCEEDED, 0)
    hc = inspected["HostConfig"]
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    assert hc["PidsLimit"] == 256
    assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 250_000_000
    assert not hc["Binds"] and not inspected["Mounts"]
    # Its release's processes have a read-only root: so has the run, with the same writable /tmp.
    assert hc["ReadonlyRootfs"] is True and hc["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=64m"}
    assert inspected["Config"]["User"] == "10001:10001"
    assert hc["NetworkMode"] == f"berth-org-{app.organization_id}" and hc["IpcMode"] == "private"
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert hc["RestartPolicy"]["Name"] == "no" and not hc["PortBindings"]
    labels = inspected["Config"]["Labels"]
    assert labels["berth.process_type"] == "run" and labels["berth.index"] == str(run.pk)
    assert labels["berth.managed"] == "true" and labels["berth.app_id"] == str(app.pk)
    assert labels["berth.release"] == "1" and labels["berth.size"] == "small"


def test_a_run_is_killed_at_its_timeout(fleet, tenant, app):
    deploy(tenant, app)
    run = run_now(tenant, app, ["sh", "-c", "echo started; sleep 600"], timeout=2)
    assert run.state == Run.State.TIMED_OUT and run.exit_code != 0
    ran = (run.finished_at - run.started_at).total_seconds()
    # SIGTERM at 2 s (the shell, PID 1, ignores it), SIGKILL 10 s later: far from its 600 s.
    assert 2 <= ran < 60, ran
    assert inspect(run.container) is None
    output = [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process))]
    assert "started" in output and output[-1].startswith("Killed at its timeout of 2 s")


def test_a_run_is_billed_from_its_start_to_its_end(fleet, tenant, app):
    size = Size.objects.get(name="small")
    size_price_set(actor=tenant, size=size, price_per_hour=Decimal("0.36"), effective_from=timezone.now())
    deploy(tenant, app)
    run = run_now(tenant, app, ["sleep", "1"])
    [record] = UsageRecord.objects.filter(container=run.container)
    assert record.process_type == "run" and record.app_name == "store" and record.size_name == "small"
    assert record.price_per_hour == Decimal("0.36")
    # The host's times, exactly: the ledger bills what the container ran, closed once it ended.
    assert (record.started_at, record.ended_at) == (run.started_at, run.finished_at)


def test_no_reconcile_heal_or_converge_takes_a_run_for_a_replica(fleet, tenant, app, monkeypatch):
    deploy(tenant, app)
    # The run's worker looks at its container every 5 s: a pass sees it exited before the worker does.
    monkeypatch.setattr(runs, "POLL_S", 5.0)
    run = run_create(actor=tenant, app=app, command=["sh", "-c", "sleep 4; echo finished"])
    with running_in_background(run.pk):
        container = wait_for(lambda: run_container(run.pk))
        for host in fleet:
            reconcile.observe_host(host)
        assert healing.app_drift(app) is None  # neither a missing replica nor one too many
        # A scale converges the app: the run is not one of its processes, so it is left to end.
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
        run_deployments(app)
        assert Deployment.objects.filter(app=app).latest("id").state == Deployment.State.SUCCEEDED
        assert inspect(container)["State"]["Running"]
        assert token_client(tenant).get("/api/v1/orgs/shop/apps/store/").json()["state"]["processes"].keys() == {"web"}
        # Its end, seen by a pass before its worker records it, is not a crash.
        exited = wait_for(lambda: _ended(container), timeout=30)
        for host in fleet:
            reconcile.observe_host(host)
        # The pass came first: the container was there, exited, and the run not over yet.
        assert exited != "gone" and Run.objects.get(pk=run.pk).state == Run.State.RUNNING
    run.refresh_from_db()
    container.refresh_from_db()
    assert (run.state, run.exit_code) == (Run.State.SUCCEEDED, 0)
    assert container.state == Container.State.REMOVED
    assert "finished" in [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process))]
    assert len(live(app)) == 2 and all(c.process_type == "web" for c in live(app))
    exits = token_client(tenant).get("/api/v1/orgs/shop/apps/store/containers/exits/").json()
    assert exits["exits"] == []


def _ended(container: Container) -> dict | str | None:
    """The container as inspected once it is no longer running ("gone" once removed), None while it runs."""
    seen = inspect(container)
    return "gone" if seen is None else None if seen["State"]["Running"] else seen


def test_a_container_of_a_run_that_ended_is_removed_by_reconcile(fleet, tenant, app):
    """A worker that died after the run's end was recorded, before it removed the container: nothing keeps it."""
    deploy(tenant, app)
    run = run_create(actor=tenant, app=app, command=["sleep", "30"])
    with running_in_background(run.pk):
        container = wait_for(lambda: run_container(run.pk))
        # Its worker is told nothing; the run is marked over behind its back, as a worker that died would leave it.
        Run.objects.filter(pk=run.pk).update(state=Run.State.LOST)
        reconcile.observe_host(container.host)
        assert inspect(container) is None
        container.refresh_from_db()
        assert container.state == Container.State.REMOVED


def test_a_run_whose_worker_died_is_taken_over_and_finishes(fleet, tenant, app, workers):
    deploy(tenant, app)
    first = workers()
    response = token_client(tenant).post(
        "/api/v1/orgs/shop/apps/store/runs/",
        {"command": ["sh", "-c", "echo begun; sleep 6; echo ended; exit 7"], "timeout": 120},
        format="json",
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    container = wait_for(lambda: run_container(run_id), timeout=60)
    first.kill()  # mid-run: nothing records its end
    workers()
    # The periodic pass sends the run again once its heartbeat is stale; the new worker finds the same container.
    run = wait_for(lambda: _pass_and_read(run_id), timeout=90, interval=1)
    assert (run.state, run.exit_code, run.attempts) == (Run.State.FAILED, 7, 2)
    assert run.container_id == container.pk and Container.objects.filter(process_type="run").count() == 1
    output = [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process, source="app"))]
    assert output == ["begun", "ended"]
    assert inspect(container) is None


class WorkerDied(BaseException):
    """A worker's end at a chosen moment (not an Exception: nothing on the way may catch it)."""


@pytest.mark.parametrize("dies_after", ["create", "row"])
def test_a_run_taken_over_at_any_moment_of_its_start_has_one_container(fleet, tenant, app, monkeypatch, dies_after):
    """Its first worker died after the engine created the container (no row yet), or after the row was written
    but before the run noted it: the worker that takes it over finds that container, and that row."""
    deploy(tenant, app)
    run = run_create(actor=tenant, app=app, command=["sh", "-c", "sleep 1; echo once"])
    recorded, note = runs._recorded, runs._note

    def die_after_create(*args):
        raise WorkerDied

    def die_before_noting(run, **changes):
        if "container" in changes:
            raise WorkerDied
        note(run, **changes)

    if dies_after == "create":
        monkeypatch.setattr(runs, "_recorded", die_after_create)
    else:
        monkeypatch.setattr(runs, "_note", die_before_noting)
    with pytest.raises(WorkerDied):
        runs.run_once(run.pk)
    monkeypatch.setattr(runs, "_recorded", recorded)
    monkeypatch.setattr(runs, "_note", note)
    assert runs.run_once(run.pk) is None and Run.objects.get(pk=run.pk).state == Run.State.RUNNING  # still alive
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))

    runs.run_once(run.pk)

    run.refresh_from_db()
    assert (run.state, run.exit_code, run.attempts) == (Run.State.SUCCEEDED, 0, 2)
    [container] = Container.objects.filter(process_type="run")
    assert run.container_id == container.pk and container.state == Container.State.REMOVED
    assert inspect(container) is None
    output = [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process, source="app"))]
    assert output == ["once"]


def _pass_and_read(run_id: int) -> Run | None:
    fleet_health.observe_fleet()
    run = Run.objects.get(pk=run_id)
    return run if run.finished else None


# --- the release command ------------------------------------------------------------------------


def test_the_release_command_runs_once_before_the_new_release_serves(fleet, tenant, app):
    deploy(tenant, app)
    deployment = deploy(
        tenant, app, image="berth-test/web:v2", release_command=["sh", "-c", "echo migrating $BERTH_RELEASE"]
    )
    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    [run] = Run.objects.filter(kind=Run.Kind.RELEASE)
    assert (run.state, run.exit_code, run.deployment_id, run.release.version) == ("succeeded", 0, deployment.pk, 2)
    # It ended before any container of v2 started.
    v2 = Container.objects.filter(app=app, release__version=2, process_type="web")
    assert v2.exists() and all(run.finished_at <= c.started_at for c in v2)
    assert fetch(live(app)[0]) == (200, "web v2\n")
    steps = [s.message for s in deployment.steps.all()]
    assert any(m.startswith("Running the release command of v2") for m in steps)
    assert "The release command succeeded (exit code 0)." in steps
    output = [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process, source="app"))]
    assert output == ["migrating v2"]
    # A scale of the release that runs does not run it again.
    formation_scale(actor=tenant, app=app, changes={"web": {"quantity": 2}})
    run_deployments(app)
    assert Run.objects.filter(kind=Run.Kind.RELEASE).count() == 1


def test_a_release_command_that_fails_fails_the_deployment_and_the_old_release_keeps_serving(fleet, tenant, app):
    deploy(tenant, app)
    [v1] = live(app)
    deployment = deploy(
        tenant,
        app,
        image="berth-test/web:v2",
        # One stream: across stdout and stderr, the order is the one the engine read them in (docs/runs.md#output).
        release_command=["sh", "-c", "echo step one >&2; echo 'no such table: orders' >&2; exit 4"],
    )
    assert deployment.state == Deployment.State.FAILED
    assert deployment.error.startswith("the release command exited with code 4; its last output:")
    assert deployment.error.endswith("step one\nno such table: orders")
    assert not Container.objects.filter(app=app, release__version=2, process_type="web").exists()
    assert [c.pk for c in live(app)] == [v1.pk] and fetch(v1) == (200, "web v1\n")
    app.refresh_from_db()
    assert app.current_release.version == 1
    body = token_client(tenant).get(f"/api/v1/orgs/shop/apps/store/deployments/{deployment.pk}/").json()
    assert "no such table: orders" in body["error"]


def test_a_release_command_that_times_out_fails_the_deployment(fleet, tenant, app):
    deploy(tenant, app)
    [v1] = live(app)
    deployment = deploy(tenant, app, image="berth-test/web:v2", release_command="sleep 600", release_timeout=2)
    assert deployment.state == Deployment.State.FAILED
    assert deployment.error == "the release command was killed at its timeout of 2 s"
    [run] = Run.objects.filter(kind=Run.Kind.RELEASE)
    assert run.state == Run.State.TIMED_OUT and inspect(run.container) is None
    assert [c.pk for c in live(app)] == [v1.pk] and fetch(v1) == (200, "web v1\n")


def test_a_deployment_whose_worker_died_during_the_release_command_takes_it_over(fleet, tenant, app, workers):
    deploy(tenant, app)
    first = workers()
    release_create(
        actor=tenant,
        app=app,
        image="berth-test/web:v2",
        process_types=WEB,
        release_command=["sh", "-c", "echo begun; sleep 6; echo ended"],
    )
    container = wait_for(lambda: Container.objects.filter(process_type="run").first(), timeout=60)
    first.kill()  # mid-command: nothing records its end
    second = workers()
    try:
        deployment = wait_for(lambda: _sweep_and_read(app), timeout=90, interval=1)
    except AssertionError:
        runs_now = list(Run.objects.values_list("state", "attempts", "claimed_by", "heartbeat_at"))
        deployments_now = list(Deployment.objects.filter(app=app).values_list("state", "attempts", "heartbeat_at"))
        raise AssertionError(f"{runs_now}\n{deployments_now}\n{second.logs()[-3000:]}") from None

    assert deployment.state == Deployment.State.SUCCEEDED, deployment.error
    # One run, one container, taken over rather than run twice.
    [run] = Run.objects.filter(kind=Run.Kind.RELEASE)
    assert (run.state, run.attempts, run.container_id) == (Run.State.SUCCEEDED, 2, container.pk)
    assert Container.objects.filter(process_type="run").count() == 1
    output = [line.text for line in store.recent(app.pk, where=store.Filter(process=run.process, source="app"))]
    assert output == ["begun", "ended"]
    assert [fetch(c) for c in live(app)] == [(200, "web v2\n")]


def _sweep_and_read(app) -> Deployment | None:
    fleet_health.observe_fleet()
    deployment = Deployment.objects.filter(app=app).latest("id")
    return deployment if deployment.state not in Deployment.UNFINISHED else None
