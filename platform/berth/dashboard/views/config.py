"""Not built yet."""

from django.http import Http404


def config_vars(request, *args, **kwargs):
    raise Http404


def config_reveal(request, *args, **kwargs):
    raise Http404
