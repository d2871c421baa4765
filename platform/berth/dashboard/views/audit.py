"""Not built yet."""

from django.http import Http404


def audit_log(request, *args, **kwargs):
    raise Http404
