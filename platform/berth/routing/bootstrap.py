"""A new installation's router: the one `make run` starts beside web and worker (`manage.py bootstrap`)."""

import os
from pathlib import Path

from django.conf import settings

from berth.fleet.models import Router

from .services import router_register


def local_router_ensure(operator) -> Router | None:
    """The local router, registered unless there are routers already. Its files are where `make run` wrote
    them (BERTH_ROUTER_DIR, var/router by default; docker-compose.yml's router-config writes them to a volume
    and sets BERTH_ROUTER_* for its router)."""
    if Router.objects.exists():
        return None
    directory = Path(os.environ.get("BERTH_ROUTER_DIR", settings.REPO_ROOT / "var" / "router")).resolve()
    return router_register(
        actor=operator,
        name="local",
        admin_url=f"unix://{directory / 'admin.sock'}",
        # Where clients reach it: what DNS names for the apps' hostnames point at.
        public_address=os.environ.get("BERTH_ROUTER_PUBLIC_ADDRESS", "127.0.0.1"),
        http_port=int(os.environ.get("BERTH_ROUTER_HTTP_PORT", 8080)),
        https_port=int(os.environ.get("BERTH_ROUTER_HTTPS_PORT", 8443)),
    )
