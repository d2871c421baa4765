"""An app's metrics as charts: each replica's CPU and memory against its size, and its requests through
the routers by status class with their response time, over the last hour, day or week (docs/metrics.md).

The page reads `metrics.selectors.app_metrics`, the API's own read, and hands the charts its points as
numbers; the same figures are in a table under them, for a screen reader or a browser without scripts.
"""

from datetime import datetime

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from berth.core.errors import Invalid
from berth.metrics.selectors import PERIODS, app_metrics, parse_metrics_period
from berth.tenancy.models import Membership
from berth.tenancy.roles import Action

from ..access import app_of, org_page

MB = 1024 * 1024
# What each period is called on the page.
PERIOD_LABELS = {"hour": "Last hour", "day": "Last day", "week": "Last week"}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@org_page(Action.APP_VIEW)
@require_safe
def app_metrics_page(request: HttpRequest, membership: Membership, app_name: str) -> HttpResponse:
    """`…/apps/<name>/metrics/?period=hour|day|week`: the app's charts."""
    app = app_of(request, membership, app_name)
    try:
        period = parse_metrics_period(request.GET.get("period"))
    except Invalid as error:
        return HttpResponseBadRequest(error.message)
    report = app_metrics(app=app, period=period, now=timezone.now())
    processes = report["processes"]
    requests = report["requests"]
    chart = {
        "start": _epoch(report["start"]),
        "end": _epoch(report["end"]),
        "bin": report["bin_seconds"],
        "processes": [
            {
                "name": p["name"],
                "cpu_limit": p["cpu_limit_millis"],
                "memory_limit_mb": round(p["memory_limit_bytes"] / MB, 1),
                "points": [
                    [
                        _epoch(point["time"]),
                        point["cpu_millis"],
                        None if point["memory_bytes"] is None else round(point["memory_bytes"] / MB, 2),
                    ]
                    for point in p["points"]
                ],
            }
            for p in processes
        ],
        "requests": [
            [
                _epoch(point["time"]),
                point["per_second"],
                *(round(point[f"status_{c}"] / report["bin_seconds"], 3) for c in ("2xx", "3xx", "4xx", "5xx")),
                point["response_ms"],
            ]
            for point in requests["points"]
        ],
    }
    summary = [
        {
            "name": p["name"],
            "cpu": _mean([point["cpu_millis"] for point in p["points"]]),
            "cpu_peak": max((point["cpu_max_millis"] or 0 for point in p["points"]), default=0),
            "cpu_limit": p["cpu_limit_millis"],
            "memory_peak_mb": round(max((point["memory_max_bytes"] or 0 for point in p["points"]), default=0) / MB, 1),
            "memory_limit_mb": round(p["memory_limit_bytes"] / MB, 1),
            "restarts": p["restarts"],
        }
        for p in processes
    ]
    context = {
        "app": app,
        "period": period,
        "periods": [(name, PERIOD_LABELS[name]) for name in PERIODS],
        "report": report,
        "summary": summary,
        "requests": requests,
        "response_ms": _weighted([(p["response_ms"], p["requests"]) for p in requests["points"]]),
        "chart": chart,
    }
    return render(request, "dashboard/apps/metrics.html", context)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 1) if known else None


def _weighted(pairs: list[tuple[float | None, int]]) -> float | None:
    """The mean of per-point means, each counted for the requests it covers."""
    known = [(value, weight) for value, weight in pairs if value is not None and weight]
    total = sum(weight for _, weight in known)
    return round(sum(value * weight for value, weight in known) / total, 1) if total else None
