"""Bad input gets a specific 4xx in the one error shape and changes nothing."""

import pytest
from django.test import override_settings

from berth.applications.models import App
from berth.audit.models import AuditEvent
from berth.tenancy.models import Organization
from tests.factories import AppFactory

APPS = "/api/v1/orgs/acme/apps/"


def assert_error(response, status: int, code: str, field: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "fields"}
    assert body["error"] == code
    assert body["message"]
    if field is not None:
        assert field in body["fields"], body


@pytest.fixture
def unchanged(owner_client):
    """Asserts, after the test's request, that no app, organization or audit event was written."""
    before = (App.objects.count(), Organization.objects.count(), AuditEvent.objects.count())
    yield
    assert (App.objects.count(), Organization.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.django_db
class TestBadBodies:
    @pytest.mark.usefixtures("unchanged")
    def test_malformed_json(self, owner_client):
        response = owner_client.generic("POST", APPS, '{"name": "x"', content_type="application/json")
        assert_error(response, 400, "malformed_request")

    @pytest.mark.usefixtures("unchanged")
    def test_json_that_is_not_an_object(self, owner_client):
        response = owner_client.generic("POST", APPS, '["name"]', content_type="application/json")
        assert_error(response, 400, "validation_error", "non_field_errors")

    @pytest.mark.usefixtures("unchanged")
    def test_wrong_type(self, owner_client):
        assert_error(owner_client.post(APPS, {"name": {"a": 1}}, format="json"), 400, "validation_error", "name")

    @pytest.mark.usefixtures("unchanged")
    def test_missing_field(self, owner_client):
        assert_error(owner_client.post(APPS, {"description": "x"}, format="json"), 400, "validation_error", "name")

    @pytest.mark.usefixtures("unchanged")
    @pytest.mark.parametrize(
        "name", ["Upper", "-lead", "trail-", "two--hyphens", "9starts-digit", "has space", "ünïcode", "a" * 31, ""]
    )
    def test_bad_slugs(self, owner_client, name):
        assert_error(owner_client.post(APPS, {"name": name}, format="json"), 400, "validation_error", "name")

    @pytest.mark.usefixtures("unchanged")
    def test_nul_character(self, owner_client):
        assert_error(
            owner_client.post(APPS, {"name": "ok", "description": "a\x00b"}, format="json"),
            400,
            "validation_error",
            "description",
        )

    @pytest.mark.usefixtures("unchanged")
    def test_over_long_string(self, owner_client):
        response = owner_client.post(APPS, {"name": "ok", "description": "x" * 501}, format="json")
        assert_error(response, 400, "validation_error", "description")
        assert "500" in response.json()["fields"]["description"][0]

    @pytest.mark.usefixtures("unchanged")
    def test_unknown_field_is_refused(self, owner_client):
        response = owner_client.post(APPS, {"name": "ok", "organization": "globex"}, format="json")
        assert_error(response, 400, "validation_error", "organization")

    @pytest.mark.usefixtures("unchanged")
    def test_huge_body(self, owner_client):
        body = '{"name": "ok", "description": "' + "x" * (300 * 1024) + '"}'
        assert_error(
            owner_client.generic("POST", APPS, body, content_type="application/json"), 413, "payload_too_large"
        )

    @pytest.mark.usefixtures("unchanged")
    def test_form_encoded_body_is_unsupported(self, owner_client):
        response = owner_client.generic("POST", APPS, "name=ok", content_type="application/x-www-form-urlencoded")
        assert_error(response, 415, "unsupported_media_type")

    def test_duplicate_app_name(self, owner_client, organization):
        AppFactory(organization=organization, name="taken")
        before = AuditEvent.objects.count()
        assert_error(owner_client.post(APPS, {"name": "taken"}, format="json"), 409, "name_taken", "name")
        assert AuditEvent.objects.count() == before

    def test_duplicate_org_slug_including_a_foreign_one(self, owner_client, outsider):
        before = Organization.objects.count()
        response = owner_client.post("/api/v1/orgs/", {"slug": "globex", "name": "Mine"}, format="json")
        assert_error(response, 409, "slug_taken", "slug")
        assert Organization.objects.count() == before

    def test_renaming_an_app_is_refused(self, owner_client, organization):
        AppFactory(organization=organization, name="web")
        response = owner_client.patch(f"{APPS}web/", {"name": "other"}, format="json")
        assert_error(response, 400, "validation_error", "name")
        assert App.objects.filter(name="web").exists()


@pytest.mark.django_db
class TestBadAddresses:
    def test_unknown_api_path(self, owner_client):
        assert_error(owner_client.get("/api/v1/nothing-here/"), 404, "not_found")

    def test_unknown_app(self, owner_client):
        assert_error(owner_client.get(f"{APPS}missing/"), 404, "not_found")

    @pytest.mark.parametrize("pk", ["abc", "99999999999999999999999", "-1", "1.5"])
    def test_non_numeric_or_huge_ids(self, owner_client, pk):
        assert_error(owner_client.get(f"/api/v1/orgs/acme/members/{pk}/"), 404, "not_found")

    def test_method_not_allowed(self, owner_client):
        assert_error(owner_client.put(f"{APPS}", {}, format="json"), 405, "method_not_allowed")

    @pytest.mark.parametrize("query", ["page=abc", "page=999", "page_size=-5&page=x"])
    def test_bad_pages(self, owner_client, query):
        assert_error(owner_client.get(f"{APPS}?{query}"), 404, "not_found")

    def test_bad_filter_value(self, owner_client):
        assert_error(owner_client.get(f"{APPS}?created_after=yesterday"), 400, "validation_error", "created_after")


@pytest.mark.django_db
def test_throttling_answers_429_in_the_error_shape(owner_client, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/min"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        statuses = [owner_client.get("/api/v1/me/").status_code for _ in range(4)]
        limited = owner_client.get("/api/v1/me/")
    assert statuses == [200, 200, 200, 429]
    assert_error(limited, 429, "rate_limited")
    assert int(limited["Retry-After"]) > 0
