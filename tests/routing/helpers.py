"""Apps deployed on the test bed for routing tests, through the services a tenant's request calls."""

from berth.applications.models import App
from berth.deployments.services import formation_scale, release_create
from tests.deployments.helpers import run_deployments
from tests.factories import AppFactory
from tests.fleet import WEB

# Quick to be ready: routing tests replace replicas many times.
FAST_WEB = {"web": {**WEB["web"], "min_ready_s": 0.5}}


def deploy_app(tenant, name: str, *, quantity: int = 1, image: str = "berth-test/web:v1", process_types=None) -> App:
    """An app of the tenant's organization running `image` at `quantity` replicas, deployed in-process."""
    app = App.objects.filter(organization=tenant.memberships.get().organization, name=name).first()
    if app is None:
        app = AppFactory(organization=tenant.memberships.get().organization, name=name)
    release_create(actor=tenant, app=app, image=image, process_types=process_types or FAST_WEB)
    if quantity != 1:
        formation_scale(actor=tenant, app=app, changes={"web": {"quantity": quantity}})
    run_deployments(app)
    return app
