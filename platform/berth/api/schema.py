"""How Berth's authentication classes appear in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "berth.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token, `berth_…`."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "berth.api.authentication.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["error", "message", "fields"],
}


def _error_codes(path: str, method: str, operation: dict) -> set[str]:
    """The error statuses an operation can answer, by the rules every view follows (berth.api.errors)."""
    codes = {"401", "403", "429"}  # no or a bad token; a role or CSRF refusal; throttled
    locations = {parameter["in"] for parameter in operation.get("parameters", [])}
    if "requestBody" in operation:
        codes |= {"400", "413", "415"}
    if method in {"post", "put", "patch", "delete"}:
        codes |= {"409"}  # a service refused because of the current state (a taken name, the last owner…)
    if "query" in locations:
        codes |= {"400", "404"}  # a filter's value is invalid; a page past the last
    if "path" in locations or path == "/api/v1/invitations/accept/":
        codes |= {"404"}
    return codes


def add_error_responses(result, generator, request, public):
    """Document Berth's error answers, in the one shape berth.api.errors gives every one of them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {
        "description": "An error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for path, operations in result["paths"].items():
        for method, operation in operations.items():
            for code in sorted(_error_codes(path, method, operation)):
                operation["responses"].setdefault(code, error)
    return result


# Names for choice sets that share a field name ("state", "status"), so the schema's enums read well.
def _choices():
    from berth.billing.models import Invoice
    from berth.deployments.models import Deployment
    from berth.fleet.models import Container, DockerHost, Router

    return (
        Deployment.State.choices,
        Container.State.choices,
        DockerHost.State.choices,
        DockerHost.Status.choices,
        Invoice.State.choices,
        Router.State.choices,
        Router.Status.choices,
    )


(
    DEPLOYMENT_STATES,
    CONTAINER_STATES,
    HOST_STATES,
    HOST_STATUSES,
    INVOICE_STATES,
    ROUTER_STATES,
    ROUTER_STATUSES,
) = _choices()
