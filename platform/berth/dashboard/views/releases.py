"""Not built yet."""

from django.http import Http404


def release_list(request, *args, **kwargs):
    raise Http404


def rollback(request, *args, **kwargs):
    raise Http404
