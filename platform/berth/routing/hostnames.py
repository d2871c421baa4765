"""The hostnames an app answers at: the one Berth gives it, and those its tenant adds."""

from django.conf import settings


def default_hostname(app_name: str, org_slug: str) -> str:
    """`<app>.<org>.<BERTH_APPS_DOMAIN>`: app names and organization slugs are DNS labels already."""
    return f"{app_name}.{org_slug}.{settings.BERTH_APPS_DOMAIN}".lower()


def app_url(app_name: str, org_slug: str, *, port: int | None = None, scheme: str = "http") -> str:
    return hostname_url(default_hostname(app_name, org_slug), port=port, scheme=scheme)


def hostname_url(hostname: str, *, port: int | None = None, scheme: str = "http") -> str:
    """The URL of a hostname on the routers; the port is left out where it is the scheme's own."""
    default = 443 if scheme == "https" else 80
    suffix = f":{port}" if port and port != default else ""
    return f"{scheme}://{hostname}{suffix}"
