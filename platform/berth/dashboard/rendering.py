"""Answer a page or the part of it an htmx request asks for, from the same template (docs/dashboard.md)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request that is not a boosted navigation: it swaps in part of the page it came from.
    A history restore (back button, htmx's cache missed) swaps in the whole page, so it gets the page."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page(request: HttpRequest, template: str, context: dict, *, fragment: str | None = None) -> HttpResponse:
    """The full page; on an htmx request that is not a boosted navigation, `fragment` alone.

    One URL answers both, so the answer varies on HX-Request (a cache must not serve one for the other).
    """
    partial = fragment is not None and wants_fragment(request)
    response = render(request, fragment if partial else template, context)  # type: ignore[arg-type]
    patch_vary_headers(response, ["HX-Request"])
    return response
