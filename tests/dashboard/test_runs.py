"""An app's Runs tab (docs/runs.md): starting a run through the form as the API would, each refusal by its
field with nothing made, what each role may see and do, and a run's page with its exit code and output, which
is text whatever the run printed."""

import re

import pytest
from django.utils import timezone

from berth.applications.models import App
from berth.deployments.models import Run
from berth.deployments.services import release_create
from berth.logs import store
from berth.logs.lines import ns_of
from berth.tenancy.roles import Role
from tests.factories import AppFactory, SizeFactory

pytestmark = pytest.mark.django_db

RUNS = "/orgs/acme/apps/shop/runs/"


@pytest.fixture
def app(organization, members):
    SizeFactory(name="small", is_default=True)
    SizeFactory(name="large", memory_mb=512)
    app = AppFactory(organization=organization, name="shop")
    release, _ = release_create(actor=members[Role.OWNER], app=app, image="berth-test/web:v1")
    App.objects.filter(pk=app.pk).update(current_release=release)
    store.client().delete(store.stream_key(app.pk))
    yield app
    store.client().delete(store.stream_key(app.pk))


def field_errors(html: str, field: str) -> list[str]:
    return re.findall(rf'<p class="error" id="id_{field}_error">([^<]*)</p>', html)


def test_a_developer_starts_a_run_and_lands_on_its_page(
    app, members, dashboard_client, django_capture_on_commit_callbacks
):
    client = dashboard_client(members[Role.DEVELOPER])
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = client.post(RUNS, {"command": "rake 'db:seed now'", "size": "large", "timeout": "90"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{RUNS}{run.pk}/"
    assert (run.command, run.size.name, run.timeout_s, run.state) == (["rake", "db:seed now"], "large", 90, "queued")
    assert len(sent) == 1
    html = client.get(response["Location"]).content.decode()
    assert f"run.{run.pk}" in html and "Queued" in html and "not yet" in html
    assert f'hx-get="{RUNS}{run.pk}/"' in html  # followed until it ends


@pytest.mark.parametrize(
    ("form", "field", "reason"),
    [
        ({"command": ""}, "command", "Give the command"),
        ({"command": "migrate; rm -rf /"}, "command", "shell operators"),
        ({"command": "true", "timeout": "0"}, "timeout", "from 1 to"),
        ({"command": "true", "timeout": "soon"}, "timeout", "whole number"),
        ({"command": "true", "size": "enormous"}, "size", "enormous"),
    ],
)
def test_a_refused_run_is_shown_by_its_field_and_makes_nothing(app, members, dashboard_client, form, field, reason):
    response = dashboard_client(members[Role.OWNER]).post(RUNS, form)
    assert response.status_code == 400
    html = response.content.decode()
    errors = field_errors(html, field)
    assert errors and reason in " ".join(errors), html[html.find("<form") :][:3000]
    assert not Run.objects.exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_read_only_role_sees_runs_without_the_form_and_cannot_start_one(app, members, dashboard_client, role):
    Run.objects.create(
        app=app, release=app.releases.get(), command=["echo", "hi"], size_id=app.formation.get().size_id, timeout_s=60
    )
    client = dashboard_client(members[role])
    html = client.get(RUNS).content.decode()
    assert "echo hi" in html and "Run a command" not in html
    assert client.post(RUNS, {"command": "echo forged"}).status_code == 403
    assert Run.objects.count() == 1


def test_a_finished_runs_page_shows_its_exit_code_and_output_as_text(app, members, dashboard_client):
    run = Run.objects.create(
        app=app,
        release=app.releases.get(),
        command=["sh", "-c", "exit 3"],
        size_id=app.formation.get().size_id,
        timeout_s=60,
        state=Run.State.FAILED,
        exit_code=3,
        finished_at=timezone.now(),
    )
    now = ns_of(timezone.now())
    printed = ["<script>alert('run')</script>", "done & dusted"]
    store.append(
        app.pk, [store.Entry(now + i, text, process=run.process, process_type="run") for i, text in enumerate(printed)]
    )
    store.append(app.pk, [store.Entry(now + 5, "another process", process="web.0", process_type="web")])

    html = dashboard_client(members[Role.VIEWER]).get(f"{RUNS}{run.pk}/").content.decode()

    assert '<dd id="run-exit-code">3</dd>' in html and "Failed" in html
    assert f"app[run.{run.pk}]: &lt;script&gt;alert(&#x27;run&#x27;)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "done &amp; dusted" in html
    assert "another process" not in html
    assert "hx-get" not in html[html.index('<section id="run"') :]  # ended: nothing to follow
