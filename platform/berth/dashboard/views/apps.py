"""Not built yet."""

from django.http import Http404


def app_create(request, *args, **kwargs):
    raise Http404


def app_overview(request, *args, **kwargs):
    raise Http404


def app_live(request, *args, **kwargs):
    raise Http404


def app_delete(request, *args, **kwargs):
    raise Http404


def deploy(request, *args, **kwargs):
    raise Http404


def formation_scale(request, *args, **kwargs):
    raise Http404
