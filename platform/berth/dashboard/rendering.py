"""Answer a page or the part of it an htmx request asks for, from the same template (docs/dashboard.md)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def render_page(request: HttpRequest, template: str, context: dict, *, fragment: str | None = None) -> HttpResponse:
    """The full page; on an htmx request that is not a boosted navigation, `fragment` alone.

    One URL answers both, so the answer varies on HX-Request (a cache must not serve one for the other).
    htmx restoring a pushed URL it has no snapshot of asks for the whole page, with HX-Request too.
    """
    htmx = getattr(request, "htmx", None)
    partial = (
        fragment is not None
        and htmx is not None
        and bool(htmx)
        and not htmx.boosted
        and not htmx.history_restore_request
    )
    response = render(request, fragment if partial else template, context)  # type: ignore[arg-type]
    patch_vary_headers(response, ["HX-Request"])
    return response
