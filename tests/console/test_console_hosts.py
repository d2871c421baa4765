"""The console's host and size pages: capacity, state changes through the services, removal, and the TLS key."""

import pytest

from berth.audit.models import AuditEvent
from berth.fleet.models import Container, DockerHost, Size
from tests.console.rows import action, container_on, html_of, messages_of, queries_for
from tests.factories import HostFactory, SizeFactory

pytestmark = pytest.mark.django_db

HOSTS = "/console/fleet/dockerhost/"
SIZES = "/console/fleet/size/"
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7-operator-secret"
CLIENT_KEY = f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n"


def row_of(html: str, name: str) -> str:
    """The change list's table row for the object whose link text is `name`."""
    start = html.index(f">{name}</a>")
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_host_list_shows_memory_used_by_live_containers_and_the_running_count(operator_client):
    busy = HostFactory(name="busy", memory_mb=2048)
    HostFactory(name="idle", memory_mb=1024)
    medium = SizeFactory(name="medium", memory_mb=256)
    for state in ["running", "running", "created"]:
        container_on(busy, size=medium, state=state)
    # Stopped containers hold no memory.
    container_on(busy, size=medium, state=Container.State.EXITED)
    container_on(busy, size=medium, state=Container.State.REMOVED)

    html = html_of(operator_client, HOSTS)

    busy_row = row_of(html, "busy")
    assert "768 / 2048 MB (38%)" in busy_row
    assert '<td class="field-running">2</td>' in busy_row
    assert "0 / 1024 MB (0%)" in row_of(html, "idle")


def test_a_degraded_host_shows_why_in_the_list_and_what_degraded_means_on_its_page(operator_client):
    reason = "10.250.6.2 does not answer on published ports 32768, 32770: No route to host"
    cut = HostFactory(name="cut", status=DockerHost.Status.DEGRADED, last_error=reason)
    HostFactory(name="fine", status=DockerHost.Status.UP)

    html = html_of(operator_client, HOSTS)

    assert f"degraded: {reason}" in row_of(html, "cut")
    assert '<td class="field-status_and_reason">up</td>' in row_of(html, "fine")
    assert "Degraded (its address does not answer)" in html  # the status filter
    page = html_of(operator_client, f"{HOSTS}{cut.pk}/change/")
    assert reason in page
    assert "degraded: the engine answers but the address does not" in page
    assert "takes no new containers" in page


def test_host_list_costs_the_same_queries_for_2_or_20_hosts(operator_client):
    def add_hosts(count):
        for _ in range(count):
            container_on(HostFactory(), state="running")

    add_hosts(2)
    few = queries_for(operator_client, HOSTS)
    add_hosts(18)
    assert queries_for(operator_client, HOSTS) == few


@pytest.mark.parametrize(
    ("action_name", "start", "end"),
    [
        ("cordon", DockerHost.State.ACTIVE, DockerHost.State.CORDONED),
        ("drain", DockerHost.State.CORDONED, DockerHost.State.DRAINING),
        ("activate", DockerHost.State.DRAINING, DockerHost.State.ACTIVE),
    ],
)
def test_state_actions_change_the_state_through_the_service_and_audit_it(
    operator_client, operator, action_name, start, end
):
    chosen, other = HostFactory(name="chosen", state=start), HostFactory(name="other", state=start)

    response = action(operator_client, HOSTS, action_name, chosen)

    assert response.status_code == 200
    assert ("success", f"{DockerHost.State(end).label}: chosen.") in messages_of(response)
    chosen.refresh_from_db()
    other.refresh_from_db()
    assert (chosen.state, other.state) == (end, start)
    event = AuditEvent.objects.get(action=f"host.{end}")
    assert (event.source, event.actor, event.target_id) == (AuditEvent.Source.CONSOLE, operator, str(chosen.pk))
    assert event.changes == {"state": [start, end]}


def test_cordoning_a_cordoned_host_changes_and_records_nothing(operator_client):
    host = HostFactory(state=DockerHost.State.CORDONED)
    action(operator_client, HOSTS, "cordon", host)
    assert not AuditEvent.objects.filter(action__startswith="host.").exists()


def test_removing_a_host_that_runs_a_container_shows_why_and_keeps_it(operator_client):
    busy = HostFactory(name="busy")
    container_on(busy, state=Container.State.RUNNING)
    empty = HostFactory(name="empty")
    with_history = HostFactory(name="with-history")
    container_on(with_history, state=Container.State.REMOVED)

    response = action(operator_client, HOSTS, "remove", busy, empty, with_history)

    assert response.status_code == 200
    assert ("error", "busy still runs 1 container; drain it first.") in messages_of(response)
    assert "still runs 1 container; drain it first." in response.content.decode()
    busy.refresh_from_db()
    assert busy.state == DockerHost.State.ACTIVE
    assert not DockerHost.objects.filter(name="empty").exists()
    # Kept for the records of the containers it ran.
    assert DockerHost.objects.get(name="with-history").state == DockerHost.State.RETIRED
    removed = AuditEvent.objects.filter(action="host.remove", source="console")
    assert sorted(removed.values_list("target_repr", flat=True)) == ["empty", "with-history"]


def test_hosts_are_removed_by_the_action_only(operator_client):
    host = HostFactory()
    assert operator_client.get(f"{HOSTS}{host.pk}/delete/").status_code == 403
    assert "delete_selected" not in html_of(operator_client, HOSTS)


def host_form(remote_engine=None, **fields):
    """The add/change form; with `remote_engine`, for the test bed's TLS engine and its real certificates."""
    tls = remote_engine.tls_fields() if remote_engine else {}
    return {
        "name": "edge-1",
        "engine_url": "tcp://10.99.1.2:2376",
        "address": "10.99.1.2",
        "memory_mb": "4096",
        "cpu_millis": "4000",
        "labels": "{}",
        "tls_ca_cert": "",
        "tls_client_cert": "",
        "tls_client_key": CLIENT_KEY,
        "ssh_private_key": "",
        "ssh_host_key": "",
        # The live-containers inline's management form.
        "containers-TOTAL_FORMS": "0",
        "containers-INITIAL_FORMS": "0",
        **tls,
        **fields,
    }


@pytest.mark.docker
def test_registering_a_host_goes_through_host_register_and_never_shows_the_key(
    operator_client, operator, remote_engine, engine_checker
):
    key_body = remote_engine.client_key.splitlines()[1]
    response = operator_client.post(f"{HOSTS}add/", host_form(remote_engine))

    assert response.status_code == 302, messages_of(response)
    host = DockerHost.objects.get(name="edge-1")
    assert host.tls_client_key == remote_engine.client_key
    assert (host.status, host.engine_version[:5]) == ("up", "20.10")
    event = AuditEvent.objects.get(action="host.register")
    assert (event.source, event.actor, event.target_id) == (AuditEvent.Source.CONSOLE, operator, str(host.pk))
    assert key_body not in str(event.changes)
    # The service audited it; the console does not record it a second time under another name.
    assert not AuditEvent.objects.filter(action="host.create").exists()

    page = html_of(operator_client, f"{HOSTS}{host.pk}/change/")
    assert remote_engine.tls_url in page
    assert 'name="tls_client_key"' in page
    assert key_body not in page
    assert key_body not in html_of(operator_client, f"{HOSTS}{host.pk}/history/")


@pytest.mark.docker
def test_a_host_whose_engine_refuses_the_connection_is_not_registered(operator_client, remote_engine, engine_checker):
    response = operator_client.post(f"{HOSTS}add/", host_form(remote_engine, tls_ca_cert=remote_engine.client_cert))

    assert response.status_code == 200
    assert "The engine&#x27;s certificate is not signed by this CA" in response.content.decode()
    assert remote_engine.client_key.splitlines()[1] not in response.content.decode()
    assert not DockerHost.objects.exists()


def test_a_refused_host_form_does_not_echo_the_key_back(operator_client):
    response = operator_client.post(f"{HOSTS}add/", host_form(address="not-an-address"))
    assert response.status_code == 200
    assert "Enter a valid IPv4 or IPv6 address." in response.content.decode()
    assert KEY_BODY not in response.content.decode()
    assert not DockerHost.objects.exists()


@pytest.mark.docker
def test_editing_a_host_keeps_its_key_unless_a_new_one_is_given(operator_client, remote_engine):
    tls = remote_engine.tls_fields()
    host = HostFactory(name="edge-1", **tls)
    change = f"{HOSTS}{host.pk}/change/"

    # The connection is unchanged (the empty key means "keep it"): no worker is asked.
    assert (
        operator_client.post(change, host_form(remote_engine, memory_mb="8192", tls_client_key="")).status_code == 302
    )
    host.refresh_from_db()
    assert (host.memory_mb, host.tls_client_key) == (8192, remote_engine.client_key)
    event = AuditEvent.objects.get(action="host.update")
    assert "tls_client_key" not in str(event.changes)

    # A new key is checked like one given at registration, and a key that is no key is refused.
    response = operator_client.post(change, host_form(remote_engine, tls_client_key="a new key"))
    assert response.status_code == 200
    assert "Not a PEM private key." in response.content.decode()
    host.refresh_from_db()
    assert host.tls_client_key == remote_engine.client_key


def test_a_hosts_page_lists_its_live_containers_only(operator_client):
    host = HostFactory()
    container_on(host, name="web-live", state=Container.State.RUNNING)
    container_on(host, name="web-gone", state=Container.State.REMOVED)
    container_on(HostFactory(), name="web-elsewhere", state=Container.State.RUNNING)

    page = html_of(operator_client, f"{HOSTS}{host.pk}/change/")

    assert "web-live" in page
    assert "web-gone" not in page
    assert "web-elsewhere" not in page
    assert "64 / 2048 MB (3%)" in page


def size_form(**fields):
    return {"name": "large", "memory_mb": "1024", "cpu_millis": "1000", **fields}


def test_adding_a_default_size_goes_through_size_create_and_moves_the_default(operator_client):
    small = SizeFactory(name="small", is_default=True)

    response = operator_client.post(f"{SIZES}add/", size_form(make_default="on"))

    assert response.status_code == 302
    assert Size.objects.get(is_default=True).name == "large"
    small.refresh_from_db()
    assert not small.is_default
    event = AuditEvent.objects.get(action="size.create")
    assert (event.source, event.changes) == (AuditEvent.Source.CONSOLE, {"memory_mb": 1024, "cpu_millis": 1000})


def test_editing_a_size_can_make_it_the_default(operator_client):
    SizeFactory(name="small", is_default=True)
    large = SizeFactory(name="large", memory_mb=1024)

    response = operator_client.post(f"{SIZES}{large.pk}/change/", size_form(memory_mb="2048", make_default="on"))

    assert response.status_code == 302
    assert Size.objects.get(is_default=True) == large
    large.refresh_from_db()
    assert large.memory_mb == 2048
    assert AuditEvent.objects.filter(action="size.update", source="console").exists()


def test_a_size_that_live_containers_use_keeps_its_limits(operator_client):
    size = SizeFactory(name="small")
    container_on(HostFactory(), size=size, state=Container.State.RUNNING)

    response = operator_client.post(f"{SIZES}{size.pk}/change/", size_form(name="small", memory_mb="4096"))

    assert response.status_code == 302
    size.refresh_from_db()
    assert size.memory_mb == 64
