"""Changes to what the routers serve: operators register routers, tenants add hostnames to their apps and
choose how their apps are routed. Only the worker speaks to routers: each change here asks it to push."""

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http.request import validate_host

from berth.applications.models import App
from berth.audit.services import audit_record
from berth.core import task_names
from berth.core.errors import Conflict, Invalid, NotFound
from berth.core.queue import enqueue_on_commit
from berth.fleet.models import Router
from berth.tenancy.models import User

from .hostnames import default_hostname
from .models import Domain

# RFC 1123 labels; the name as a whole at most 253 characters, and at least two labels.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def _push(app_id: int) -> None:
    enqueue_on_commit(task_names.ROUTES_PUSH, [app_id])


# Hostnames.


def hostname_problem(hostname: Any) -> str | None:
    """Why `hostname` cannot be a domain of an app, or None. Lowercase is expected (see normalize_hostname)."""
    if not isinstance(hostname, str) or not hostname:
        return "Give a hostname such as www.example.com."
    if ":" in hostname or "/" in hostname:
        return "Give the hostname alone: no scheme, port or path."
    if "*" in hostname:
        return "Wildcard hostnames are not accepted; add each hostname."
    if len(hostname) > 253:
        return "A hostname has at most 253 characters."
    labels = hostname.split(".")
    if len(labels) < 2:
        return "A hostname has at least two labels, such as example.com."
    if not all(_LABEL.match(label) for label in labels):
        return (
            "Each label of a hostname is 1 to 63 letters, digits or hyphens, and neither starts nor ends with a hyphen."
        )
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return "Give a hostname, not an IP address."
    if labels[-1].isdigit():
        return "The last label of a hostname is not a number."
    return None


def normalize_hostname(hostname: Any) -> Any:
    if isinstance(hostname, str):
        return hostname.strip().lower().removesuffix(".")
    return hostname


def _under_apps_domain(hostname: str) -> bool:
    apps_domain = settings.BERTH_APPS_DOMAIN.lower()
    return hostname == apps_domain or hostname.endswith(f".{apps_domain}")


def _berths_own(hostname: str) -> bool:
    """Where people reach Berth itself (BERTH_PUBLIC_URL, and ALLOWED_HOSTS as Django matches them; `*`
    names no host): a router that took such a name could get its certificate and serve a tenant's app
    where operators sign in."""
    own = [pattern for pattern in settings.ALLOWED_HOSTS if pattern != "*"]
    return hostname == (urlsplit(settings.BERTH_PUBLIC_URL).hostname or "").lower() or validate_host(hostname, own)


@transaction.atomic
def domain_add(*, actor: User, app: App, hostname: Any) -> Domain:
    """Add a hostname to an app. A hostname belongs to at most one app in the installation, and names
    under BERTH_APPS_DOMAIN are Berth's: each app has its own there already."""
    hostname = normalize_hostname(hostname)
    problem = hostname_problem(hostname)
    if problem:
        raise Invalid(problem, field="hostname", code="invalid_hostname")
    if hostname == default_hostname(app.name, app.organization.slug):
        raise Conflict("The app answers at this hostname already: Berth gives it to every app.", field="hostname")
    if _berths_own(hostname):
        raise Invalid("Berth itself answers at this hostname.", field="hostname", code="reserved_hostname")
    if _under_apps_domain(hostname):
        raise Invalid(
            f"Names under {settings.BERTH_APPS_DOMAIN} belong to Berth's apps; "
            f"this app's own is {default_hostname(app.name, app.organization.slug)}.",
            field="hostname",
            code="reserved_hostname",
        )
    try:
        with transaction.atomic():
            domain = Domain.objects.create(app=app, hostname=hostname, created_by=actor)
    except IntegrityError:
        same_app = Domain.objects.filter(hostname=hostname, app=app).exists()
        message = "This app has this hostname already." if same_app else "Another app has this hostname."
        raise Conflict(message, field="hostname", code="hostname_taken") from None
    audit_record(
        actor=actor, action="domain.add", target=domain, organization=app.organization, changes={"hostname": hostname}
    )
    _push(app.pk)
    return domain


@transaction.atomic
def domain_remove(*, actor: User, domain: Domain) -> None:
    """Remove a hostname from its app; the push takes it off the routers, which then answer it with their 404."""
    app = domain.app
    audit_record(
        actor=actor,
        action="domain.remove",
        target=domain,
        organization=app.organization,
        changes={"hostname": domain.hostname},
    )
    domain.delete()
    _push(app.pk)


@transaction.atomic
def domain_remove_hostname(*, actor: User, app: App, hostname: Any) -> None:
    """Remove `hostname` from `app`, as a person names it (any case, a trailing dot). The hostname Berth
    gives the app is not one of its domains and cannot go; another app's hostname is as unknown as none."""
    hostname = normalize_hostname(hostname)
    if hostname == default_hostname(app.name, app.organization.slug):
        raise Conflict(
            "Berth gives every app this hostname; it cannot be removed.", field="hostname", code="default_hostname"
        )
    domain = Domain.objects.select_for_update().filter(app=app, hostname=hostname).first()
    if domain is None:
        raise NotFound("Not found.")
    domain_remove(actor=actor, domain=domain)


@transaction.atomic
def app_routing_update(*, actor: User, app: App, https_only: Any = None, drain_timeout_s: Any = None) -> App:
    """Whether plain HTTP is redirected to HTTPS, and how long a leaving replica may finish its requests."""
    changes: dict[str, list] = {}
    if https_only is not None:
        if not isinstance(https_only, bool):
            raise Invalid("https_only must be true or false.", field="https_only")
        if https_only != app.https_only:
            changes["https_only"] = [app.https_only, https_only]
            app.https_only = https_only
    if drain_timeout_s is not None:
        if isinstance(drain_timeout_s, bool) or not isinstance(drain_timeout_s, int) or not 1 <= drain_timeout_s <= 900:
            raise Invalid("drain_timeout_s must be a whole number of seconds from 1 to 900.", field="drain_timeout_s")
        if drain_timeout_s != app.drain_timeout_s:
            changes["drain_timeout_s"] = [app.drain_timeout_s, drain_timeout_s]
            app.drain_timeout_s = drain_timeout_s
    if changes:
        app.save(update_fields=list(changes))
        audit_record(actor=actor, action="app.routing", target=app, organization=app.organization, changes=changes)
        _push(app.pk)
    return app


# Routers.

_LOOPBACK_NAMES = {"localhost"}


def admin_url_problem(url: Any) -> str | None:
    """HAProxy's runtime API has no credentials of its own, so Berth speaks to it only where nobody else
    can: a unix socket, or a TCP port on the loopback interface (a remote router is reached through an
    authenticated tunnel whose local end is registered here)."""
    if not isinstance(url, str) or not url:
        return "Give the router's admin endpoint: unix:///path/admin.sock or tcp://127.0.0.1:PORT."
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None if parts.path.startswith("/") and not parts.netloc else "A unix:// endpoint is an absolute path."
    if parts.scheme != "tcp":
        return "The admin endpoint is unix:///path/admin.sock or tcp://127.0.0.1:PORT."
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        return "A tcp:// admin endpoint names an address and a port."
    if parts.hostname not in _LOOPBACK_NAMES:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return (
                "HAProxy's runtime API has no credentials, so it must not listen beyond this machine: use a unix "
                "socket or a loopback address (reach a remote router through an authenticated tunnel)."
            )
    return None


ROUTER_FIELDS = ("admin_url", "public_address", "http_port", "https_port")


def router_check(fields: dict) -> None:
    """Refuse, naming the field, a router's admin endpoint or port that Berth cannot use; for the console's
    form too, which shows the refusal next to the field before anything is saved."""
    problem = admin_url_problem(fields.get("admin_url"))
    if problem:
        raise Invalid(problem, field="admin_url", code="invalid_admin_url")
    for port in ("http_port", "https_port"):
        value = fields.get(port)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535):
            raise Invalid("A port is a whole number from 1 to 65535.", field=port)


@transaction.atomic
def router_register(*, actor: User | None, name: str, **fields: Any) -> Router:
    """Register a router; the worker's next pass (at once) gives it the whole route table."""
    router_check(fields)
    try:
        with transaction.atomic():
            router = Router.objects.create(name=name, **fields)
    except IntegrityError:
        raise Conflict("A router with this name already exists.", field="name", code="name_taken") from None
    audit_record(
        actor=actor,
        action="router.register",
        target=router,
        changes={field: getattr(router, field) for field in ("name", *ROUTER_FIELDS)},
    )
    enqueue_on_commit(task_names.ROUTES_SYNC)
    return router


@transaction.atomic
def router_update(*, actor: User, router: Router, **fields: Any) -> Router:
    """Change a router's endpoint, addresses, or state (active, or disabled: no longer kept in step)."""
    current = Router.objects.select_for_update().get(pk=router.pk)
    state = fields.get("state", current.state)
    if state not in Router.State.values:
        raise Invalid(f"A router is {' or '.join(Router.State.values)}.", field="state")
    router_check({field: fields.get(field, getattr(current, field)) for field in ROUTER_FIELDS})
    changes = {f: [getattr(current, f), v] for f, v in fields.items() if getattr(current, f) != v}
    for field, value in fields.items():
        setattr(router, field, value)
    if changes:
        router.save(update_fields=list(changes))
        audit_record(actor=actor, action="router.update", target=router, changes=changes)
        enqueue_on_commit(task_names.ROUTES_SYNC)
    return router


@transaction.atomic
def router_remove(*, actor: User, router: Router) -> None:
    """Forget a router. Berth stops keeping it in step; it serves what it has until it is stopped."""
    audit_record(actor=actor, action="router.remove", target=router, changes={"name": router.name})
    router.delete()
