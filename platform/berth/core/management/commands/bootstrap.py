"""Create a first operator and a demo organization (idempotent) and say where to log in."""

import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from berth.applications.models import App
from berth.applications.services import app_create
from berth.tenancy.models import Organization, User
from berth.tenancy.services import api_token_create, organization_create

UNCHANGED = "(unchanged)"


class Command(BaseCommand):
    help = "Create the first operator and a demo organization, then print where to log in."

    @transaction.atomic
    def handle(self, *args, **options):
        lines = []
        operator_email = os.environ.get("BERTH_OPERATOR_EMAIL", "operator@berth.local")
        _, password = self._user(operator_email, os.environ.get("BERTH_OPERATOR_PASSWORD"), staff=True)
        lines.append(f"Console   {settings.BERTH_PUBLIC_URL}/console/   {operator_email}  {password}")

        demo, demo_password = self._user("demo@berth.local", os.environ.get("BERTH_DEMO_PASSWORD"), staff=False)
        organization = Organization.objects.filter(slug="demo").first()
        if organization is None:
            organization = organization_create(actor=demo, slug="demo", name="Demo organization")
        if not App.objects.filter(organization=organization, name="hello").exists():
            app_create(actor=demo, organization=organization, name="hello", description="A first app")
        lines.append(f"API docs  {settings.BERTH_PUBLIC_URL}/api/docs/   tenant demo@berth.local  {demo_password}")
        if demo_password is not UNCHANGED:
            _, token = api_token_create(actor=demo, name="bootstrap")
            lines.append(f"API token for demo@berth.local (shown once): {token}")
            lines.append(
                f"  curl -H 'Authorization: Bearer {token}' {settings.BERTH_PUBLIC_URL}/api/v1/orgs/demo/apps/"
            )
        self.stdout.write("\n".join(["", "Berth is ready:", *lines, ""]))

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
