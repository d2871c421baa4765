"""Refuse API request bodies over the size limit before anything reads them."""

from django.conf import settings

from .errors import error_json


class ApiBodyLimitMiddleware:
    """Django limits form bodies only; JSON bodies read by DRF need the same bound."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            declared = request.META.get("CONTENT_LENGTH") or "0"
            try:
                length = int(declared)
            except ValueError:
                return error_json(400, "malformed_request", "The Content-Length header is not a number.")
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                return error_json(
                    413,
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE}.",
                )
        return self.get_response(request)
