"""An app's logs: the recent lines as text or NDJSON, and the live tail as Server-Sent Events
(docs/logs.md#reading-logs). Both parse the same query (`berth.logs.query`) and need `log.view`."""

import re

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import Http404, HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views import View
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from berth.core.errors import BerthError, Invalid
from berth.logs import store, tail
from berth.logs.query import DEFAULT_LINES, MAX_LINES, LogQuery, log_query
from berth.logs.selectors import app_for_logs, app_log_lines
from berth.tenancy.roles import Action

from ..errors import error_body
from ..renderers import LogJSONRenderer, LogNDJSONRenderer, LogTextRenderer
from .base import AppScopedViewSet

_QUERY = [
    OpenApiParameter(
        "lines",
        int,
        description=f"How many of the newest matching lines (default {DEFAULT_LINES}, at most {MAX_LINES}).",
    ),
    OpenApiParameter(
        "since", str, description="Only lines from then on: an ISO 8601 time, or a duration (30s, 10m, 2h, 7d)."
    ),
    OpenApiParameter("process_type", str, description="Only lines of one process type (`web`), the app's and Berth's."),
    OpenApiParameter(
        "source", str, enum=["app", "berth"], description="Only what the app printed, or only Berth's lines."
    ),
    OpenApiParameter("search", str, description="Only lines that contain this text, ignoring case."),
]
_EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}\Z")


class LinesResponse(Response):
    """DRF drops the Content-Type of an empty body; no line at all is still text (or NDJSON)."""

    @property
    def rendered_content(self):
        content = super().rendered_content
        if not content and self.status_code < 400:
            self["Content-Type"] = f"{self.accepted_media_type}; charset=utf-8"
        return content


class LogViewSet(AppScopedViewSet):
    """The app's recent log lines, oldest first."""

    renderer_classes = [LogTextRenderer, LogNDJSONRenderer, LogJSONRenderer]
    pagination_class = None  # `lines` bounds the answer
    required_actions = {"list": Action.LOG_VIEW}

    @extend_schema(
        parameters=_QUERY,
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="`<time> app[web.1]: <line>` each"),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description='One object per line: {"id", "time", "source", "process", …}'
            ),
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}}, description="The same objects, as one array"
            ),
        },
    )
    def list(self, request, org_slug=None, app_name=None):
        """The newest lines that match, as text (the default), NDJSON (`Accept: application/x-ndjson` or
        `?format=ndjson`) or JSON. The live tail of the same lines is `logs/stream/`."""
        query = log_query(request.query_params)
        return LinesResponse(app_log_lines(self.app, query))

    def perform_content_negotiation(self, request, force=False):
        try:
            return super().perform_content_negotiation(request, force=force)
        except Http404:
            raise Invalid("The format is one of: text, ndjson, json.", field="format") from None


class LogStreamView(View):
    """The live tail: `text/event-stream` until the client goes away. Each line is an event with `id:` its
    store id and `data:` the line as NDJSON has it; `event: notice` says what could not be shown. An async
    view outside DRF (which has none): it authenticates with DRF's classes and answers in the API's shape."""

    http_method_names = ["get"]

    async def get(self, request: HttpRequest, org_slug: str, app_name: str) -> HttpResponseBase:
        try:
            app_id, keys, query, last_event_id = await sync_to_async(_open)(request, org_slug, app_name)
        except exceptions.APIException as refused:
            status = refused.status_code
            code = "not_authenticated" if status == 401 else refused.default_code
            answer = JsonResponse(error_body(code, str(refused.detail)), status=status)
            if status == 401:
                answer["WWW-Authenticate"] = 'Bearer realm="berth"'
            return answer
        except BerthError as refused:
            fields = {refused.field: [refused.message]} if refused.field else {}
            return JsonResponse(error_body(refused.code, refused.message, fields), status=refused.status)
        if not isinstance(request, ASGIRequest):
            # A sync server (runserver, a test's live server) would read the endless stream to its end before
            # sending anything, holding its worker for good.
            return JsonResponse(
                error_body("unavailable", "The live tail is served by the ASGI web process (docs/logs.md)."), status=503
            )
        response = StreamingHttpResponse(
            tail.events(app_id, keys, query, last_event_id), content_type="text/event-stream; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold events back in its buffer
        return response

    def http_method_not_allowed(self, request, *args, **kwargs):
        answer = JsonResponse(
            error_body("method_not_allowed", f'Method "{request.method}" not allowed.'),
            status=405,
            headers={"Allow": "GET"},
        )

        async def answered() -> HttpResponseBase:
            return answer

        return answered()


def _open(request: HttpRequest, org_slug: str, app_name: str) -> tuple[int, tuple[str, str], LogQuery, str | None]:
    """Who asks (a token or the browser's session, as for any API request), the app, the query and where
    to resume. The database connection goes back at once: a tail must not hold one for hours."""
    try:
        drf_request = Request(request, authenticators=[auth() for auth in APIView.authentication_classes])
        actor = drf_request.user
        if not actor.is_authenticated:
            raise exceptions.NotAuthenticated()
        app = app_for_logs(actor=actor, organization_slug=org_slug, app_name=app_name)
        query = log_query(request.GET)
        # EventSource sends Last-Event-ID when it reconnects; `?after=` starts a tail after a line a page showed.
        field = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "after"
        last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("after") or None
        if last_event_id is not None and not _EVENT_ID.match(last_event_id):
            raise Invalid("Give the id of a line, as the stream or the API gave it.", field=field)
        return app.pk, (store.stream_key(app.pk), store.epoch_key()), query, last_event_id
    finally:
        if not connection.in_atomic_block:  # a test's transaction, never a request's (no ATOMIC_REQUESTS)
            connection.close()
