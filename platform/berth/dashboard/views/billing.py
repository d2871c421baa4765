"""Not built yet."""

from django.http import Http404


def usage(request, *args, **kwargs):
    raise Http404


def usage_csv(request, *args, **kwargs):
    raise Http404


def invoice_detail(request, *args, **kwargs):
    raise Http404
