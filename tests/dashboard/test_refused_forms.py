"""A form is never lost when it is refused: every dashboard form that can be refused comes back as a 400
with each value typed in its own input (read by name among the controls of the form that was sent, not
searched for anywhere on the page) and the refused input marked invalid, its error tied to it. Passwords
are the exception by design: they are never sent back.

The areas' tests check each refusal's words and that nothing changed; this one walks all the forms the
same way, so a form added or reworked that drops what was typed, or puts it in the wrong input, fails here.
"""

from datetime import timedelta
from html.parser import HTMLParser
from typing import NamedTuple

import pytest
from django.utils import timezone

from berth.tenancy.roles import Role
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

YESTERDAY = (timezone.now().date() - timedelta(days=1)).isoformat()
DEPLOY_ROW = {
    "process-TOTAL_FORMS": "1",
    "process-INITIAL_FORMS": "0",
    "process-0-name": "web",
    "process-0-port": "8080",
    "process-0-health_type": "http",
    "process-0-health_path": "/cgi-bin/health",
}


class Form(NamedTuple):
    """Who sends the form (None: a visitor), where, what was typed, the input the refusal is about (None
    when it is about the whole form, as a wrong sign-in is), and inputs that come back empty by design."""

    role: str | None
    address: str
    typed: dict[str, str]
    refused: str | None
    emptied: tuple[str, ...] = ()
    method: str = "post"


PASSWORDS = {
    "old_password": "not it",
    "new_password1": "a fine new passphrase",
    "new_password2": "a fine new passphrase",
}
FORMS = {
    "create organization": Form(Role.VIEWER, "/orgs/new/", {"name": "Initech <Corp>", "slug": "Init Tech"}, "slug"),
    "create app": Form(Role.DEVELOPER, "/orgs/acme/apps/new/", {"name": "Shop!", "description": "Sells"}, "name"),
    "delete app": Form(Role.DEVELOPER, "/orgs/acme/apps/shop/delete/", {"confirm": "shp"}, "confirm"),
    "deploy": Form(
        Role.DEVELOPER,
        "/orgs/acme/apps/shop/deploy/",
        {"image": "Not An Image!", "description": "typed", **DEPLOY_ROW, "process-0-port": "70000"},
        "process-0-port",
    ),
    "scale": Form(Role.DEVELOPER, "/orgs/acme/apps/shop/formation/", {"quantity-web": "500"}, "quantity-web"),
    "config edit": Form(
        Role.DEVELOPER,
        "/orgs/acme/apps/shop/config/",
        {"rows": "3", "known": "GREETING", "set_GREETING": "new-hello", "new_key_1": "bad-key", "new_value_1": "v1"},
        "new_key_1",
    ),
    "add a domain": Form(
        Role.DEVELOPER, "/orgs/acme/apps/shop/domains/", {"hostname": "www.example.com:8080"}, "hostname"
    ),
    "routing": Form(
        Role.DEVELOPER,
        "/orgs/acme/apps/shop/routing/",
        {"https_only": "on", "drain_timeout_s": "9000"},
        "drain_timeout_s",
    ),
    "invite": Form(Role.OWNER, "/orgs/acme/members/invite/", {"email": "not-an-email", "role": "admin"}, "email"),
    "change a role": Form(Role.OWNER, "/orgs/acme/members/{owner}/role/", {"role": "admin"}, "role"),
    "leave": Form(Role.VIEWER, "/orgs/acme/members/leave/", {"confirm": "acne"}, "confirm"),
    "audit filter": Form(
        Role.ADMIN,
        "/orgs/acme/audit/",
        {"actor": "bob@example.test", "date_from": "2026-02-31"},
        "date_from",
        (),
        "get",
    ),
    "sign in": Form(None, "/signin/", {"email": "pat@example.test", "password": "not it"}, None, ("password",)),
    "sign up": Form(
        None,
        "/signup/",
        {"email": "new@example.test", "name": "New Person", "password": "12345"},
        "password",
        ("password",),
    ),
    "password change": Form(Role.VIEWER, "/account/password/", PASSWORDS, "old_password", tuple(PASSWORDS)),
    "token create": Form(Role.DEVELOPER, "/account/tokens/", {"name": "laptop", "expires": YESTERDAY}, "expires"),
}


class PostedForm(HTMLParser):
    """The controls of the page's form that posts to `address` (its action, or none: the page's own
    address), by name: the value each shows and its attributes. A control outside the <form> that names
    it with `form="…"` counts as its own, as the browser sends it."""

    def __init__(self, html: str, address: str):
        super().__init__()
        self.address = address
        self.forms: list[dict] = []  # each <form>: its id and whether it posts to the address
        self.controls: list[tuple[int | str, str, dict]] = []  # (form index or id, name, attributes)
        self._in_form: int | None = None
        self._select: int | None = None
        self._textarea: int | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._in_form = len(self.forms)
            self.forms.append({"id": attrs.get("id"), "posted": attrs.get("action") in (None, "", self.address)})
            return
        name = attrs.get("name")
        owner = attrs.get("form") or self._in_form
        if tag == "input" and name and attrs.get("type") not in ("hidden", "submit") and owner is not None:
            value = ("on" if "checked" in attrs else "") if attrs.get("type") == "checkbox" else attrs.get("value")
            self.controls.append((owner, name, {**attrs, "shown": value or ""}))
        elif tag in ("select", "textarea") and name and owner is not None:
            self.controls.append((owner, name, {**attrs, "shown": ""}))
            setattr(self, f"_{tag}", len(self.controls) - 1)
        elif tag == "option" and self._select is not None and "selected" in attrs:
            self.controls[self._select][2]["shown"] = attrs.get("value") or ""

    def handle_data(self, data):
        if self._textarea is not None:
            shown = self.controls[self._textarea][2]["shown"] + data
            # A newline right after <textarea> is not part of the value (Django writes one there).
            self.controls[self._textarea][2]["shown"] = shown.removeprefix("\n")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = None
        elif tag in ("select", "textarea"):
            setattr(self, f"_{tag}", None)

    def inputs(self) -> dict[str, dict]:
        """The posted form's controls by name; exactly one form on the page posts to the address."""
        posted = [i for i, form in enumerate(self.forms) if form["posted"]]
        assert len(posted) == 1, f"{len(posted)} forms post to {self.address}"
        index, form_id = posted[0], self.forms[posted[0]]["id"]
        mine = [
            (name, attrs) for owner, name, attrs in self.controls if owner == index or (form_id and owner == form_id)
        ]
        names = [name for name, _ in mine]
        assert len(names) == len(set(names)), f"a name given twice in the form: {names}"
        return dict(mine)


@pytest.mark.parametrize("form", FORMS)
def test_a_refused_form_comes_back_with_what_was_typed_in_each_input(
    form, world, members, settings, client, dashboard_client
):
    settings.BERTH_SIGNUP = "open"
    role, address, typed, refused, emptied, method = FORMS[form]
    UserFactory(email="pat@example.test", password=PASSWORD)  # an account, for the sign-in
    sender = dashboard_client(members[role]) if role else client
    address = address.format(owner=members[Role.OWNER].memberships.get().pk)
    response = getattr(sender, method)(address, typed)

    assert response.status_code == 400, form
    inputs = PostedForm(response.content.decode(), address).inputs()
    for name, value in typed.items():
        if name in emptied:
            assert inputs[name]["shown"] == "", f"{form}: {name} is sent back"
        elif name in inputs:
            shown = inputs[name]["shown"]
            assert shown == value, f"{form}: {name} shows {shown!r}, not {value!r}"
        else:  # only the form's bookkeeping is not a visible input
            assert name.endswith("_FORMS") or name in ("rows", "known"), f"{form}: no input {name}"
    if refused:
        attrs = inputs[refused]
        assert attrs.get("aria-invalid") == "true", f"{form}: {refused} is not marked invalid"
        described_by = (attrs.get("aria-describedby") or "").split()
        page = response.content.decode()
        assert any(f'<p class="error" id="{x}"' in page for x in described_by), f"{form}: its error is not tied to it"
