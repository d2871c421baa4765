"""Not built yet."""

from django.http import Http404


def member_list(request, *args, **kwargs):
    raise Http404


def invite(request, *args, **kwargs):
    raise Http404


def role_change(request, *args, **kwargs):
    raise Http404


def member_remove(request, *args, **kwargs):
    raise Http404


def invitation_revoke(request, *args, **kwargs):
    raise Http404
