"""A person's API tokens: list, create (the token shown once), revoke.

The same parsing and services as the API's `/api/v1/tokens/` (`ApiTokenCreateSerializer`,
`api_token_create`, `api_token_revoke`), and the same scoping (`api_tokens_of`): another person's
token is a 404.
"""

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import ValidationError

from berth.api.serializers import ApiTokenCreateSerializer
from berth.core.errors import BerthError
from berth.tenancy.models import ApiToken, User
from berth.tenancy.selectors import api_tokens_of
from berth.tenancy.services import api_token_create, api_token_revoke

from ..access import actor
from ..forms import add_refusal

# The session key that carries a new token's plaintext from the POST that made it to the one page
# that shows it; that page takes it out, so no later page (or a reload) shows it again.
NEW_TOKEN = "berth_new_api_token"  # noqa: S105  (the name of a session key, not a secret)
PER_PAGE = 50


class TokenForm(forms.Form):
    # Lengths and the expiry's rule are the API serializer's; this form only reads the two inputs.
    name = forms.CharField(help_text="What the token is for, e.g. “CI deploys”.")
    expires = forms.DateField(
        required=False,
        label="Expires after",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The token works until the end of this day (UTC). Leave empty for a token that does not expire.",
    )


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def _create(user: User, form: TokenForm) -> tuple[ApiToken, str] | None:
    """Make the token the form asks for, or put the refusal next to its field and return None."""
    if not form.is_valid():
        return None
    expires = form.cleaned_data["expires"]
    data = ApiTokenCreateSerializer(
        data={"name": form.cleaned_data["name"], "expires_at": _end_of_day(expires) if expires else None}
    )
    try:
        data.is_valid(raise_exception=True)
        return api_token_create(actor=user, **data.validated_data)
    except (ValidationError, BerthError) as error:
        add_refusal(form, error, fields={"expires_at": "expires"})
        return None


@never_cache  # the page that shows a new token must not come back from a cache or the back button
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """The person's tokens with a form to make one; a POST makes it and shows it on the next page only."""
    user = actor(request)
    form = TokenForm(request.POST or None)
    if request.method == "POST":
        created = _create(user, form)
        if created is not None:
            api_token, plaintext = created
            request.session[NEW_TOKEN] = {"id": api_token.pk, "token": plaintext}
            return redirect("dashboard:tokens")
    new = request.session.pop(NEW_TOKEN, None)
    page = Paginator(api_tokens_of(user), PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "new": new}
    return render(request, "dashboard/account/tokens.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Confirm, then revoke one of the person's tokens; anything using it is refused from then on."""
    api_token = get_object_or_404(api_tokens_of(actor(request)), pk=token_id)
    if request.method == "POST":
        api_token_revoke(actor=actor(request), api_token=api_token)
        messages.success(request, f"The token “{api_token.name}” is revoked; anything that uses it is refused.")
        return redirect("dashboard:tokens")
    return render(request, "dashboard/account/token_revoke.html", {"api_token": api_token})
