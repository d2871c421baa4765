"""A person's account: sign in and out, sign up, change or reset the password, accept an invitation.

Accounts are made by `tenancy.services.user_signup` (open to anyone or by invitation only, as
BERTH_SIGNUP says), passwords are set by `user_set_password` (both audited and both held to
AUTH_PASSWORD_VALIDATORS), invitations are accepted by `invitation_accept`. Sign-in attempts, sign-ups
and password-reset requests are counted per client address and per email by `core.ratelimit`.
"""

import hashlib
import math

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, password_validation, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN, PasswordResetConfirmView, redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic import TemplateView

from berth.core.errors import BerthError
from berth.core.ratelimit import hit, parse_rate
from berth.core.requests import client_ip
from berth.tenancy import services
from berth.tenancy.models import Invitation
from berth.tenancy.selectors import invitation_pending, role_of, signup_is_open

from ..access import actor
from ..forms import add_refusal

# --- forms -------------------------------------------------------------------------------------


class SignInForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def clean_email(self) -> str:
        # Accounts are stored in lower case (UserManager), and the sign-in looks the address up as it is.
        return self.cleaned_data["email"].strip().lower()


class SignUpForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    name = forms.CharField(
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        help_text="How the people in your organizations see you. Optional.",
    )
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=" ".join(password_validation.password_validators_help_texts()),
    )

    def __init__(self, *args, invitation: Invitation | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if invitation is not None:
            # An invited person signs up with the invited address: shown, not editable, and what was
            # posted for it is ignored (a disabled field keeps its initial value).
            self.fields["email"].initial = invitation.email
            self.fields["email"].disabled = True
            self.fields["email"].help_text = "The address this invitation was sent to."


# --- helpers -----------------------------------------------------------------------------------


def _safe_next(request: HttpRequest) -> str | None:
    """The `next` of the request if it is a path on this site; anything else (another host, a scheme,
    `//host`) is dropped, so a link cannot send a person somewhere else after they sign in."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    local = url.startswith("/") and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if local else None


def _limited(request: HttpRequest, scope: str, email: str) -> int | None:
    """Count this attempt against BERTH_SIGNIN_RATE for the client's address and for the email typed;
    the seconds to wait if either is over it, else None. Both count every attempt, right or wrong, so a
    correct password is refused too while a limit holds."""
    limit, window = parse_rate(settings.BERTH_SIGNIN_RATE)
    keys = [f"ratelimit:{scope}:ip:{client_ip(request) or 'unknown'}"]
    email = email.strip().lower()
    if email:
        # Hashed: the key stays short whatever was typed, and Redis holds no addresses.
        keys.append(f"ratelimit:{scope}:email:{hashlib.sha256(email.encode()).hexdigest()[:32]}")
    waits = [wait for allowed, wait in (hit(key, limit, window) for key in keys) if not allowed]
    return max(1, math.ceil(max(waits))) if waits else None


def _in_words(seconds: int) -> str:
    """A wait as people say it: "40 seconds", "3 minutes", "2 hours" (rounded up, never shorter)."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size:
            count = math.ceil(seconds / size)
            return f"{count} {unit}s"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _too_many(request: HttpRequest, template: str, context: dict, retry_after: int) -> HttpResponse:
    """The page again with what was typed, as a 429 that says when to try again."""
    response = render(request, template, {**context, "retry_after": _in_words(retry_after)}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _public_url(request: HttpRequest) -> str:
    """Where people reach Berth, for links in emails: BERTH_PUBLIC_URL, or the address of this request."""
    return settings.BERTH_PUBLIC_URL.rstrip("/") or request.build_absolute_uri("/").rstrip("/")


# --- signing in and out ------------------------------------------------------------------------

SIGNIN = "dashboard/account/signin.html"


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    """The sign-in page (what `/` shows a visitor); after signing in, `next` if it is local, else home."""
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "dashboard:home")
    context = {"next": next_url, "signup_open": signup_is_open()}
    if request.method == "GET":
        return render(request, SIGNIN, {**context, "form": SignInForm()})
    email = request.POST.get("email", "")
    retry_after = _limited(request, "signin", email)
    if retry_after is not None:
        # Not even checked: while limited, a right password is refused like a wrong one.
        return _too_many(request, SIGNIN, {**context, "form": SignInForm(initial={"email": email})}, retry_after)
    form = SignInForm(request.POST)
    if form.is_valid():
        user = authenticate(request, email=form.cleaned_data["email"], password=form.cleaned_data["password"])
        if user is not None:
            login(request, user)
            return redirect(next_url or "dashboard:home")
        form.add_error(None, "The email or the password is not right.")
    return render(request, SIGNIN, {**context, "form": form}, status=400)


@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    """Sign out (a POST: a link or an image on another site cannot sign a person out)."""
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("dashboard:signin")


# --- signing up --------------------------------------------------------------------------------

SIGNUP = "dashboard/account/signup.html"


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account: open to anyone, or (by default) only from an invitation's link, whose address
    the account gets and whose organization the new person joins."""
    token = request.POST.get("invitation") or request.GET.get("invitation") or None
    invitation = invitation_pending(token) if token else None
    if token is not None and (invitation is None or invitation.expires_at <= timezone.now()):
        return _invitation_unusable(request, invitation)
    if request.user.is_authenticated:
        return redirect("dashboard:invitation-accept", token) if token else redirect("dashboard:home")
    if invitation is None and not signup_is_open():
        return render(request, "dashboard/account/signup_closed.html", status=403)
    form = SignUpForm(request.POST or None, invitation=invitation)
    context = {"form": form, "invitation": invitation, "token": token}
    if request.method == "GET":
        return render(request, SIGNUP, context)
    retry_after = _limited(request, "signup", invitation.email if invitation else request.POST.get("email", ""))
    if retry_after is not None:
        return _too_many(request, SIGNUP, context, retry_after)
    if form.is_valid():
        try:
            user = services.user_signup(invitation_token=token, **form.cleaned_data)
        except BerthError as error:
            add_refusal(form, error)
        else:
            login(request, user)
            if invitation is not None:
                messages.success(request, f"Welcome to Berth. You joined {invitation.organization.name}.")
                return redirect("dashboard:org-home", invitation.organization.slug)
            messages.success(request, "Welcome to Berth. Create an organization to put your apps in.")
            return redirect("dashboard:home")
    return render(request, SIGNUP, context, status=400)


# --- passwords ---------------------------------------------------------------------------------


@login_required
@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """Change the password. The person stays signed in here; their other sessions end."""
    user = actor(request)
    form = PasswordChangeForm(user, request.POST or None)
    template = "dashboard/account/password_change.html"
    if request.method == "GET":
        return render(request, template, {"form": form})
    if form.is_valid():
        try:
            services.user_set_password(actor=user, password=form.cleaned_data["new_password1"])
        except BerthError as error:
            add_refusal(form, error, fields={"password": "new_password1"})
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Your password is changed. Any other session of yours is signed out.")
            return redirect("dashboard:password-change")
    return render(request, template, {"form": form}, status=400)


RESET_PAGE = "dashboard/account/password_reset.html"


@never_cache
@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link by email. The answer is the same whether the address has an account or not."""
    form = PasswordResetForm(request.POST or None)
    if request.method == "GET":
        return render(request, RESET_PAGE, {"form": form})
    retry_after = _limited(request, "password-reset", request.POST.get("email", ""))
    if retry_after is not None:
        kept = PasswordResetForm(initial={"email": request.POST.get("email", "")})
        return _too_many(request, RESET_PAGE, {"form": kept}, retry_after)
    if not form.is_valid():
        return render(request, RESET_PAGE, {"form": form}, status=400)
    form.save(
        request=request,
        use_https=request.is_secure(),
        subject_template_name="dashboard/account/password_reset_subject.txt",
        email_template_name="dashboard/account/password_reset_email.txt",
        extra_email_context={
            "base_url": _public_url(request),
            "valid_days": str(max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)),
        },
    )
    return redirect("dashboard:password-reset-sent")


password_reset_sent = TemplateView.as_view(template_name="dashboard/account/password_reset_sent.html")
password_reset_done = TemplateView.as_view(template_name="dashboard/account/password_reset_done.html")


class PasswordResetConfirm(PasswordResetConfirmView):
    """Django's reset link handling (the token leaves the address bar before the form is shown, so it
    is not sent on in a Referer), with the new password set by `user_set_password`."""

    template_name = "dashboard/account/password_reset_confirm.html"
    success_url = reverse_lazy("dashboard:password-reset-done")

    def dispatch(self, *args, **kwargs):
        response = super().dispatch(*args, **kwargs)
        if not self.validlink and response.status_code == 200:
            response.status_code = 400  # the page that says the link does not work
        return response

    def form_valid(self, form):
        try:
            services.user_set_password(actor=form.user, password=form.cleaned_data["new_password1"], reset=True)
        except BerthError as error:
            add_refusal(form, error, fields={"password": "new_password1"})
            return self.form_invalid(form)
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


password_reset_confirm = PasswordResetConfirm.as_view()


# --- invitations -------------------------------------------------------------------------------


def _invitation_unusable(
    request: HttpRequest, invitation: Invitation | None, message: str = "", status: int = 0
) -> HttpResponse:
    """The page for a link that cannot be used: unknown or used (404), expired (400), or refused."""
    expired = invitation is not None and invitation.expires_at <= timezone.now()
    context = {"expired": expired, "message": message}
    return render(
        request, "dashboard/account/invitation_invalid.html", context, status=status or (400 if expired else 404)
    )


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's link: the organization and role, and for the invited person a button to join.
    A visitor is offered to sign in (and come back here) or to sign up with the invited address."""
    invitation = invitation_pending(token)
    if invitation is None or invitation.expires_at <= timezone.now():
        return _invitation_unusable(request, invitation)
    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect_to_login(request.get_full_path())
        return render(request, "dashboard/account/invitation.html", {"invitation": invitation, "token": token})
    user = request.user
    if request.method == "POST":
        try:
            membership = services.invitation_accept(actor=user, token=token)
        except BerthError as error:
            return _invitation_unusable(request, invitation, error.message, error.status)
        organization = membership.organization
        messages.success(request, f"You joined {organization.name} as {membership.get_role_display().lower()}.")
        return redirect("dashboard:org-home", organization.slug)
    context = {
        "invitation": invitation,
        "token": token,
        "someone_else": invitation.email != user.email.lower(),
        "already_member": role_of(user, invitation.organization) is not None,
    }
    return render(request, "dashboard/account/invitation.html", context)
