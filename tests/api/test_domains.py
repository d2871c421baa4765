"""An app's domains and routing settings through the API: the hostnames a tenant adds, the one Berth gives
every app, its URLs, and every refusal naming its field, with nothing changed."""

import pytest

from berth.applications.models import App
from berth.audit.models import AuditEvent
from berth.fleet.models import Router
from berth.routing.models import Domain
from berth.tenancy.roles import Role
from tests.conftest import token_client
from tests.factories import AppFactory, DomainFactory, MembershipFactory, OrganizationFactory, RouterFactory
from tests.routing.helpers import deploy_app
from worker.routing import push

from .test_bad_input import assert_error
from .test_query_counts import queries_for

APP = "/api/v1/orgs/acme/apps/shop/"
DOMAINS = f"{APP}domains/"


@pytest.fixture
def app(organization):
    return AppFactory(organization=organization, name="shop")


def routing_events() -> list[tuple[str, dict]]:
    return list(
        AuditEvent.objects.filter(action__in=["domain.add", "domain.remove", "app.routing"])
        .order_by("pk")
        .values_list("action", "changes")
    )


@pytest.mark.django_db
class TestDomains:
    def test_an_added_domain_is_listed_with_who_added_it_and_recorded(self, app, members, owner_client):
        response = owner_client.post(DOMAINS, {"hostname": " WWW.Example.com. "}, format="json")

        assert response.status_code == 201, response.content
        body = response.json()
        assert body["hostname"] == "www.example.com"
        assert body["created_by"] == members[Role.OWNER].email
        assert body["urls"] == {"http": "http://www.example.com", "https": "https://www.example.com"}
        assert list(Domain.objects.values_list("app__name", "hostname")) == [("shop", "www.example.com")]
        listed = owner_client.get(DOMAINS).json()
        assert [(d["hostname"], d["created_by"]) for d in listed["results"]] == [
            ("www.example.com", members[Role.OWNER].email)
        ]
        assert owner_client.get(f"{DOMAINS}WWW.example.COM/").json()["hostname"] == "www.example.com"
        event = AuditEvent.objects.get(action="domain.add")
        assert (event.source, event.actor, event.organization.slug) == ("api", members[Role.OWNER], "acme")
        assert event.changes == {"hostname": "www.example.com"}

    def test_the_app_says_its_own_hostname_and_urls_on_the_first_active_routers_ports(self, app, owner_client):
        body = owner_client.get(APP).json()
        assert body["hostname"] == "shop.acme.localhost"
        # No router yet: the ports a router in production listens on.
        assert body["urls"] == {"http": "http://shop.acme.localhost", "https": "https://shop.acme.localhost"}

        RouterFactory(name="b-local", http_port=8080, https_port=8443)
        RouterFactory(name="a-off", http_port=1080, https_port=1443, state=Router.State.DISABLED)
        RouterFactory(name="c-other", http_port=9080, https_port=9443)
        assert owner_client.get(APP).json()["urls"] == {
            "http": "http://shop.acme.localhost:8080",
            "https": "https://shop.acme.localhost:8443",
        }
        assert owner_client.get("/api/v1/orgs/acme/apps/").json()["results"][0]["urls"]["https"] == (
            "https://shop.acme.localhost:8443"
        )
        DomainFactory(app=app, hostname="www.example.com")
        assert owner_client.get(DOMAINS).json()["results"][0]["urls"] == {
            "http": "http://www.example.com:8080",
            "https": "https://www.example.com:8443",
        }

    @pytest.mark.parametrize(
        ("hostname", "reason"),
        [
            ("", "Give a hostname"),
            ("www.example.com:8080", "no scheme, port or path"),
            ("https://www.example.com", "no scheme, port or path"),
            ("www.example.com/shop", "no scheme, port or path"),
            ("*.example.com", "Wildcard hostnames are not accepted"),
            ("example", "at least two labels"),
            ("-www.example.com", "1 to 63 letters, digits or hyphens"),
            ("www..example.com", "1 to 63 letters, digits or hyphens"),
            ("ünïcode.example.com", "1 to 63 letters, digits or hyphens"),
            ("www.exa mple.com", "1 to 63 letters, digits or hyphens"),
            (f"{'a' * 64}.example.com", "1 to 63 letters, digits or hyphens"),
            (".".join(["a" * 60] * 5), "at most 253 characters"),
            ("10.0.0.1", "not an IP address"),
            ("www.example.123", "not a number"),
            ("other.acme.localhost", "belong to Berth's apps; this app's own is shop.acme.localhost"),
            ("shop.globex.localhost", "belong to Berth's apps"),
            ("localhost", "at least two labels"),
        ],
    )
    def test_a_hostname_that_cannot_be_an_apps_is_a_400_naming_the_field_and_changes_nothing(
        self, app, owner_client, hostname, reason
    ):
        response = owner_client.post(DOMAINS, {"hostname": hostname}, format="json")

        assert_error(response, 400, response.json()["error"], "hostname")
        assert reason in response.json()["fields"]["hostname"][0], response.json()
        assert not Domain.objects.exists()
        assert routing_events() == []

    @pytest.mark.parametrize(
        "body", [{}, {"hostname": {"a": 1}}, {"hostname": ["www.example.com"]}, {"hostname": None}]
    )
    def test_a_body_without_a_hostname_as_text_is_a_400_naming_it(self, app, owner_client, body):
        assert_error(owner_client.post(DOMAINS, body, format="json"), 400, "validation_error", "hostname")
        assert not Domain.objects.exists()

    def test_an_unknown_field_is_refused(self, app, owner_client):
        response = owner_client.post(DOMAINS, {"hostname": "www.example.com", "app": "other"}, format="json")
        assert_error(response, 400, "validation_error", "app")
        assert not Domain.objects.exists()

    def test_a_hostname_another_tenant_has_is_a_409_and_stays_theirs(self, app, owner_client):
        theirs = DomainFactory(
            app=AppFactory(organization=OrganizationFactory(slug="globex")), hostname="www.example.com"
        )

        response = owner_client.post(DOMAINS, {"hostname": "WWW.example.com"}, format="json")

        assert_error(response, 409, "hostname_taken", "hostname")
        assert response.json()["fields"]["hostname"] == ["Another app has this hostname."]
        assert list(Domain.objects.values_list("pk", "app_id")) == [(theirs.pk, theirs.app_id)]
        assert routing_events() == []

    def test_a_hostname_the_app_has_already_is_a_409(self, app, owner_client):
        DomainFactory(app=app, hostname="www.example.com")
        again = owner_client.post(DOMAINS, {"hostname": "www.example.com"}, format="json")
        assert_error(again, 409, "hostname_taken", "hostname")
        assert again.json()["message"] == "This app has this hostname already."
        own = owner_client.post(DOMAINS, {"hostname": "shop.acme.localhost"}, format="json")
        assert_error(own, 409, "conflict", "hostname")
        assert "Berth gives it to every app" in own.json()["message"]
        assert Domain.objects.count() == 1

    def test_a_removed_domain_is_gone_and_recorded(self, app, members, owner_client):
        DomainFactory(app=app, hostname="www.example.com")
        DomainFactory(app=app, hostname="shop.example.com")

        assert owner_client.delete(f"{DOMAINS}www.example.com/").status_code == 204

        assert list(Domain.objects.values_list("hostname", flat=True)) == ["shop.example.com"]
        assert routing_events() == [("domain.remove", {"hostname": "www.example.com"})]
        assert_error(owner_client.delete(f"{DOMAINS}www.example.com/"), 404, "not_found")
        assert_error(owner_client.get(f"{DOMAINS}www.example.com/"), 404, "not_found")

    def test_the_apps_own_hostname_cannot_be_removed(self, app, owner_client):
        response = owner_client.delete(f"{DOMAINS}shop.acme.localhost/")
        assert_error(response, 409, "default_hostname", "hostname")
        assert routing_events() == []

    def test_another_apps_hostname_is_a_404_through_this_app(self, app, organization, owner_client):
        sibling = DomainFactory(app=AppFactory(organization=organization, name="blog"), hostname="blog.example.com")
        foreign = DomainFactory(app=AppFactory(organization=OrganizationFactory()), hostname="www.globex.com")
        for domain in (sibling, foreign):
            assert_error(owner_client.get(f"{DOMAINS}{domain.hostname}/"), 404, "not_found")
            assert_error(owner_client.delete(f"{DOMAINS}{domain.hostname}/"), 404, "not_found")
        assert Domain.objects.count() == 2
        assert owner_client.get(DOMAINS).json()["count"] == 0

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
    def test_a_read_only_role_reads_domains_and_changes_none(self, app, members, role):
        DomainFactory(app=app, hostname="www.example.com")
        client = token_client(members[role])
        assert client.get(DOMAINS).json()["count"] == 1
        assert_error(client.post(DOMAINS, {"hostname": "new.example.com"}, format="json"), 403, "permission_denied")
        assert_error(client.delete(f"{DOMAINS}www.example.com/"), 403, "permission_denied")
        assert list(Domain.objects.values_list("hostname", flat=True)) == ["www.example.com"]
        assert routing_events() == []

    def test_a_developer_adds_and_removes_domains(self, app, members):
        client = token_client(members[Role.DEVELOPER])
        assert client.post(DOMAINS, {"hostname": "www.example.com"}, format="json").status_code == 201
        assert client.delete(f"{DOMAINS}www.example.com/").status_code == 204

    def test_another_organizations_app_is_a_404_and_its_domains_stay(self, app, outsider):
        DomainFactory(app=app, hostname="www.example.com")
        client = token_client(outsider)
        for response in (
            client.get(DOMAINS),
            client.post(DOMAINS, {"hostname": "new.example.com"}, format="json"),
            client.delete(f"{DOMAINS}www.example.com/"),
            client.patch(APP, {"https_only": True}, format="json"),
        ):
            assert response.status_code == 404
            assert response.json() == {"error": "not_found", "message": "Not found.", "fields": {}}
        assert list(Domain.objects.values_list("hostname", flat=True)) == ["www.example.com"]
        assert App.objects.get(pk=app.pk).https_only is False


@pytest.mark.django_db
def test_the_domain_list_costs_the_same_queries_for_2_or_40_domains_by_many_people(app, organization, owner_client):
    RouterFactory()
    for _ in range(2):
        DomainFactory(app=app, created_by=MembershipFactory(organization=organization).user)
    few = queries_for(owner_client, f"{DOMAINS}?page_size=100")
    for _ in range(38):
        DomainFactory(app=app, created_by=MembershipFactory(organization=organization).user)
    assert queries_for(owner_client, f"{DOMAINS}?page_size=100") == few


@pytest.mark.django_db
class TestRoutingSettings:
    def test_patch_sets_https_only_and_the_drain_timeout_and_records_the_change(self, app, members, owner_client):
        response = owner_client.patch(APP, {"https_only": True, "drain_timeout_s": 120}, format="json")

        assert response.status_code == 200, response.content
        assert (response.json()["https_only"], response.json()["drain_timeout_s"]) == (True, 120)
        app.refresh_from_db()
        assert (app.https_only, app.drain_timeout_s) == (True, 120)
        event = AuditEvent.objects.get(action="app.routing")
        assert (event.source, event.actor) == ("api", members[Role.OWNER])
        assert event.changes == {"https_only": [False, True], "drain_timeout_s": [30, 120]}
        # The same values again change and record nothing.
        owner_client.patch(APP, {"https_only": True}, format="json")
        assert AuditEvent.objects.filter(action="app.routing").count() == 1

    def test_patch_of_the_description_alone_leaves_routing_as_it_is(self, app, owner_client):
        response = owner_client.patch(APP, {"description": "The shop"}, format="json")
        assert response.status_code == 200
        app.refresh_from_db()
        assert (app.description, app.https_only, app.drain_timeout_s) == ("The shop", False, 30)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"https_only": "yes"}, "https_only"),
            ({"https_only": 1}, "https_only"),
            ({"drain_timeout_s": 0}, "drain_timeout_s"),
            ({"drain_timeout_s": 901}, "drain_timeout_s"),
            ({"drain_timeout_s": "30"}, "drain_timeout_s"),
            ({"drain_timeout_s": 1.5}, "drain_timeout_s"),
            ({"drain_timeout_s": True}, "drain_timeout_s"),
            ({"drain_timeout_s": 10**20}, "drain_timeout_s"),
            # A refused setting leaves the others of the same request unchanged too.
            ({"description": "changed", "https_only": True, "drain_timeout_s": -5}, "drain_timeout_s"),
            ({"hostname": "www.example.com"}, "hostname"),
        ],
    )
    def test_a_refused_setting_is_a_400_naming_it_and_changes_nothing(self, app, owner_client, body, field):
        response = owner_client.patch(APP, body, format="json")

        assert_error(response, 400, response.json()["error"], field)
        app.refresh_from_db()
        assert (app.description, app.https_only, app.drain_timeout_s) == ("An app", False, 30)
        assert not AuditEvent.objects.filter(action__in=["app.routing", "app.update"]).exists()

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
    def test_a_read_only_role_cannot_change_routing(self, app, members, role):
        response = token_client(members[role]).patch(APP, {"https_only": True}, format="json")
        assert_error(response, 403, "permission_denied")
        assert App.objects.get(pk=app.pk).https_only is False


@pytest.mark.django_db
def test_a_member_of_two_organizations_cannot_move_a_hostname_between_them(app, members):
    """The hostname is taken installation-wide: the same person, owner of another organization, gets a 409
    there too, and the domain stays with the app that has it."""
    owner = members[Role.OWNER]
    MembershipFactory(user=owner, organization=OrganizationFactory(slug="side"), role=Role.OWNER)
    AppFactory(organization=owner.memberships.get(organization__slug="side").organization, name="blog")
    client = token_client(owner)
    assert client.post(DOMAINS, {"hostname": "www.example.com"}, format="json").status_code == 201
    response = client.post("/api/v1/orgs/side/apps/blog/domains/", {"hostname": "www.example.com"}, format="json")
    assert_error(response, 409, "hostname_taken", "hostname")
    assert list(Domain.objects.values_list("app__name", flat=True)) == ["shop"]


def test_a_domain_added_through_the_api_is_routed_to_the_app_and_removed_again(fleet, router, tenant):
    """The door and the router agree: the hostname answers from the app once the worker's push ran, and is
    the router's 404 once removed."""
    app = deploy_app(tenant, "hello")
    client = token_client(tenant)
    domains = "/api/v1/orgs/shop/apps/hello/domains/"
    assert router.get("www.example.com", "/cgi-bin/request").status == 404

    assert client.post(domains, {"hostname": "www.example.com"}, format="json").status_code == 201
    push([app.pk])  # what the task sent after the request runs
    served = router.get("www.example.com", "/cgi-bin/request")
    assert served.status == 200, served.body
    assert served.body.splitlines()[0].endswith("web v1")
    assert "HTTP_X_FORWARDED_HOST=www.example.com" in served.body

    assert client.delete(f"{domains}www.example.com/").status_code == 204
    push([app.pk])
    gone = router.get("www.example.com", "/cgi-bin/request")
    assert gone.status == 404
    assert "web v1" not in gone.body
    assert router.get("hello.shop.localhost", "/cgi-bin/request").status == 200
