"""Create a first operator and a demo organization (idempotent) and say where to log in."""

import os
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from berth.applications.models import App
from berth.applications.services import app_create
from berth.billing.services import size_price_set
from berth.deployments.services import release_create
from berth.fleet.models import DockerHost, Size
from berth.fleet.services import host_register, size_create
from berth.tenancy.models import Organization, User
from berth.tenancy.services import api_token_create, organization_create

# name, memory MB, CPU millis, default, price per hour (USD)
SIZES = [
    ("small", 128, 250, True, Decimal("0.010")),
    ("medium", 512, 500, False, Decimal("0.040")),
    ("large", 1024, 1000, False, Decimal("0.080")),
]
DEMO_IMAGE = "berth-test/web:v1"

UNCHANGED = "(unchanged)"


class Command(BaseCommand):
    help = "Create the first operator and a demo organization, then print where to log in."

    @transaction.atomic
    def handle(self, *args, **options):
        lines = []
        operator_email = os.environ.get("BERTH_OPERATOR_EMAIL", "operator@berth.local")
        operator, password = self._user(operator_email, os.environ.get("BERTH_OPERATOR_PASSWORD"), staff=True)
        lines.append(f"Console   {settings.BERTH_PUBLIC_URL}/console/   {operator_email}  {password}")

        demo, demo_password = self._user("demo@berth.local", os.environ.get("BERTH_DEMO_PASSWORD"), staff=False)
        organization = Organization.objects.filter(slug="demo").first()
        if organization is None:
            organization = organization_create(actor=demo, slug="demo", name="Demo organization")
        self._fleet(operator)
        app = App.objects.filter(organization=organization, name="hello").first()
        if app is None:
            app = app_create(actor=demo, organization=organization, name="hello", description="A first app")
        if not app.releases.exists():
            web = {"web": {"port": 8080, "health_check": {"type": "http", "path": "/cgi-bin/health"}}}
            release_create(actor=demo, app=app, image=DEMO_IMAGE, process_types=web, description="Demo")
            lines.append(
                f"Deploying demo/hello ({DEMO_IMAGE}) on the local engine: GET /api/v1/orgs/demo/apps/hello/containers/"
            )
        lines.append(f"API docs  {settings.BERTH_PUBLIC_URL}/api/docs/   tenant demo@berth.local  {demo_password}")
        if demo_password is not UNCHANGED:
            _, token = api_token_create(actor=demo, name="bootstrap")
            lines.append(f"API token for demo@berth.local (shown once): {token}")
            lines.append(
                f"  curl -H 'Authorization: Bearer {token}' {settings.BERTH_PUBLIC_URL}/api/v1/orgs/demo/apps/"
            )
        self.stdout.write("\n".join(["", "Berth is ready:", *lines, ""]))

    def _fleet(self, operator: User) -> None:
        """Sizes, and the local Docker engine as the first host (the worker checks it)."""
        for name, memory_mb, cpu_millis, is_default, price in SIZES:
            if not Size.objects.filter(name=name).exists():
                size = size_create(
                    actor=operator, name=name, memory_mb=memory_mb, cpu_millis=cpu_millis, is_default=is_default
                )
                size_price_set(actor=operator, size=size, price_per_hour=price)
        if not DockerHost.objects.exists():
            # No worker runs yet to test the connection; its heartbeat checks the engine once it does.
            host_register(
                actor=operator,
                test_connection=False,
                name="local",
                engine_url="unix:///var/run/docker.sock",
                address="127.0.0.1",
                memory_mb=_memory_mb(),
                cpu_millis=(os.cpu_count() or 1) * 1000,
            )

    def _user(self, email: str, password: str | None, *, staff: bool) -> tuple[User, str]:
        user = User.objects.filter(email=email).first()
        if user is not None:
            return user, UNCHANGED
        password = password or secrets.token_urlsafe(12)
        if staff:
            user = User.objects.create_superuser(email, password, name="Operator")
        else:
            user = User.objects.create_user(email, password, name="Demo tenant")
        return user, password


def _memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return total_kb // 1024
