"""One JSON error shape for every API failure: {"error": code, "message": text, "fields": {name: [text]}}."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from berth.core.errors import BerthError

logger = logging.getLogger(__name__)

# Codes for DRF's own exceptions, where its default code says less than it could.
_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "validation_error",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.NotAuthenticated: "not_authenticated",
}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": code, "message": message, "fields": fields or {}}


def error_json(status_code: int, code: str, message: str) -> JsonResponse:
    """The error shape for answers made outside DRF (middleware, URL 404s, server errors)."""
    return JsonResponse(error_body(code, message), status=status_code)


def flatten_detail(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ValidationError detail as {"field.sub": ["message", …]}."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "non_field_errors" if key == "non_field_errors" and not prefix else f"{prefix}{key}"
            fields.update(flatten_detail(value, f"{name}."))
        return fields
    if isinstance(detail, list) and detail and all(isinstance(item, str) for item in detail):
        return {prefix.rstrip("."): [str(item) for item in detail]}
    if isinstance(detail, list):
        fields = {}
        for index, item in enumerate(detail):
            fields.update(flatten_detail(item, f"{prefix}{index}."))
        return fields
    return {prefix.rstrip(".") or "non_field_errors": [str(detail)]}


def _from_drf(exc: exceptions.APIException) -> tuple[int, dict, dict]:
    headers = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(int(wait))
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_detail(exc.detail)
        first = next(iter(fields.items()))
        message = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
        return exc.status_code, error_body("validation_error", message, fields), headers
    code = next((name for cls, name in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if code is None:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
    return exc.status_code, error_body(code, str(exc.detail)), headers


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, BerthError):
        set_rollback()
        fields = {exc.field: [exc.message]} if exc.field else {}
        return Response(error_body(exc.code, exc.message, fields), status=exc.status)
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        status_code, body, headers = _from_drf(exc)
        return Response(body, status=status_code, headers=headers)
    return None


@csrf_exempt  # an unknown API path answers 404 whatever the method, not a CSRF page
def not_found_view(request, exception=None):
    if request.path.startswith("/api/"):
        return error_json(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error_view(request):
    if request.path.startswith("/api/"):
        return error_json(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Berth failed to answer.")
    from django.views.defaults import server_error

    return server_error(request)
