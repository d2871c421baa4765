"""Not built yet."""

from django.http import Http404


def signin(request, *args, **kwargs):
    raise Http404


def signout(request, *args, **kwargs):
    raise Http404


def signup(request, *args, **kwargs):
    raise Http404


def password_change(request, *args, **kwargs):
    raise Http404


def password_reset(request, *args, **kwargs):
    raise Http404


def password_reset_sent(request, *args, **kwargs):
    raise Http404


def password_reset_confirm(request, *args, **kwargs):
    raise Http404


def password_reset_done(request, *args, **kwargs):
    raise Http404


def invitation_accept(request, *args, **kwargs):
    raise Http404
