"""An app's logs: the newest lines that match the filters, then the live tail (static/berth/logs.js), paused
and resumed in the page, and the matching lines as a text file.

The filters are a GET form parsed by the API's query parser (`berth.logs.query`) and read by the API's
selector; the live view is the API's stream (`logs/stream/`, with the browser's session), started after
the last line the page shows. The page keeps at most a settable number of lines, so a chatty app cannot
make it grow without end; every line is put in as text, never as markup.
"""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from berth.core.errors import BerthError, Invalid, Unavailable
from berth.logs import store
from berth.logs.lines import SOURCES
from berth.logs.query import MAX_LINES, log_query
from berth.logs.selectors import app_log_lines, app_log_newest_id
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action

from ..access import app_of, org_page

SHOWN = 200  # lines the page opens with
KEEP_DEFAULT, KEEP_MAX = 1000, 10_000  # lines the page keeps while it follows the tail


@org_page(Action.LOG_VIEW)
def app_logs(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    app = app_of(request, membership, app_name)
    params = {name: request.GET.get(name, "") for name in ("process_type", "source", "search")}
    error: BerthError | None = None
    lines, newest = [], "0-0"
    try:
        query = log_query({**params, "lines": str(SHOWN)})
        newest = app_log_newest_id(app)
        lines = app_log_lines(app, query)
    except (Invalid, Unavailable) as refused:
        error = refused
    filters = urlencode({name: value for name, value in params.items() if value})
    release = app.current_release
    context = {
        "app": app,
        "lines": lines,
        "params": params,
        "error": error,
        "sources": SOURCES,
        "process_types": sorted(release.process_types) if release else [],
        # The tail goes on after the last line shown, or after the newest stored when none matched.
        "after": lines[-1].id if lines and store.id_key(lines[-1].id) > store.id_key(newest) else newest,
        "stream_url": reverse("log-stream", args=[membership.organization.slug, app.name]),
        "download_url": reverse("dashboard:app-logs-download", args=[membership.organization.slug, app.name]),
        "filters": filters,
        "keep": KEEP_DEFAULT,
        "keep_max": KEEP_MAX,
    }
    return render(request, "dashboard/logs/page.html", context, status=error.status if error else 200)


@org_page(Action.LOG_VIEW)
def app_logs_download(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """The newest matching lines as a text file (all the API gives at once: MAX_LINES)."""
    app = app_of(request, membership, app_name)
    try:
        query = log_query({**request.GET.dict(), "lines": request.GET.get("lines") or str(MAX_LINES)})
        text = "".join(line.formatted() + "\n" for line in app_log_lines(app, query))
    except (Invalid, Unavailable) as refused:
        said = f"{refused.field}: {refused.message}" if refused.field else refused.message
        return HttpResponse(f"{said}\n", status=refused.status, content_type="text/plain")
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{app.name}-logs-{stamp}.txt"'
    return response
