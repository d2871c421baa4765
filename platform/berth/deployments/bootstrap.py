"""A new installation's demo app, `hello`, with a first release queued to deploy (`manage.py bootstrap`)."""

from berth.applications.models import App
from berth.applications.services import app_create

from .services import release_create

DEMO_IMAGE = "berth-test/web:v1"


def demo_app_ensure(owner, organization) -> bool:
    """The demo app, made if missing, with a release of DEMO_IMAGE unless it has one; whether one was made."""
    app = App.objects.filter(organization=organization, name="hello").first()
    if app is None:
        app = app_create(actor=owner, organization=organization, name="hello", description="A first app")
    if app.releases.exists():
        return False
    web = {"web": {"port": 8080, "health_check": {"type": "http", "path": "/cgi-bin/health"}}}
    release_create(actor=owner, app=app, image=DEMO_IMAGE, process_types=web, description="Demo")
    return True
