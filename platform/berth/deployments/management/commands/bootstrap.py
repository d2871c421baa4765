"""Create a first operator and a demo organization (idempotent) and say where to log in. Each part is made
by the app it belongs to (`bootstrap.py` of tenancy, fleet, billing and deployments); the command lives
here, with the demo app's first deployment, as deployments is the app that builds on all the others."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from berth.billing.bootstrap import prices_set
from berth.deployments.bootstrap import DEMO_IMAGE, demo_app_ensure
from berth.fleet.bootstrap import local_host_ensure, sizes_ensure
from berth.routing.bootstrap import local_router_ensure
from berth.routing.hostnames import app_url
from berth.tenancy.bootstrap import UNCHANGED, demo_organization_ensure, demo_token_create, user_ensure


class Command(BaseCommand):
    help = "Create the first operator and a demo organization, then print where to log in."

    @transaction.atomic
    def handle(self, *args, **options):
        lines = []
        operator_email = os.environ.get("BERTH_OPERATOR_EMAIL", "operator@berth.local")
        operator, password = user_ensure(operator_email, os.environ.get("BERTH_OPERATOR_PASSWORD"), staff=True)
        lines.append(f"Console   {settings.BERTH_PUBLIC_URL}/console/   {operator_email}  {password}")

        demo, demo_password = user_ensure("demo@berth.local", os.environ.get("BERTH_DEMO_PASSWORD"), staff=False)
        organization = demo_organization_ensure(demo)
        prices_set(operator, sizes_ensure(operator))
        local_host_ensure(operator)
        local_router_ensure(operator)
        if demo_app_ensure(demo, organization):
            lines.append(
                f"Deploying demo/hello ({DEMO_IMAGE}) on the local engine: GET /api/v1/orgs/demo/apps/hello/containers/"
            )
        lines.append(f"App       {app_url('hello', 'demo', port=int(os.environ.get('BERTH_ROUTER_HTTP_PORT', 8080)))}/")
        lines.append(f"Dashboard {settings.BERTH_PUBLIC_URL}/   sign in as demo@berth.local  {demo_password}")
        lines.append(f"API docs  {settings.BERTH_PUBLIC_URL}/api/docs/")
        if demo_password is not UNCHANGED:
            token = demo_token_create(demo)
            lines.append(f"API token for demo@berth.local (shown once): {token}")
            lines.append(
                f"  curl -H 'Authorization: Bearer {token}' {settings.BERTH_PUBLIC_URL}/api/v1/orgs/demo/apps/"
            )
        self.stdout.write("\n".join(["", "Berth is ready:", *lines, ""]))
