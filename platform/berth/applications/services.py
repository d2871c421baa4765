"""Creating, changing and deleting apps. Every change is audited."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from berth.audit.services import audit_record
from berth.billing.metering import usage_close_for_app
from berth.billing.quotas import quota_check_new_app
from berth.core import task_names
from berth.core.errors import Conflict
from berth.core.queue import enqueue_on_commit
from berth.tenancy.models import Organization, User

from .models import App


@transaction.atomic
def app_create(*, actor: User, organization: Organization, name: str, description: str = "") -> App:
    Organization.objects.select_for_update().filter(pk=organization.pk).first()  # one app count at a time
    quota_check_new_app(organization)
    try:
        with transaction.atomic():
            app = App.objects.create(organization=organization, name=name, description=description, created_by=actor)
    except IntegrityError:
        raise Conflict(
            "An app with this name already exists in the organization.", field="name", code="name_taken"
        ) from None
    audit_record(
        actor=actor,
        action="app.create",
        target=app,
        organization=organization,
        changes={"name": name, "description": description},
    )
    return app


@transaction.atomic
def app_update(*, actor: User, app: App, description: str) -> App:
    old = app.description
    app.description = description
    app.save(update_fields=["description", "updated_at"])
    audit_record(
        actor=actor,
        action="app.update",
        target=app,
        organization=app.organization,
        changes={"description": [old, description]},
    )
    return app


@transaction.atomic
def app_delete(*, actor: User, app: App) -> None:
    """Delete an app. Its usage stops being billed now; the worker removes its containers from the hosts
    (they are orphans once the app is gone) and the ledger keeps what they ran."""
    usage_close_for_app(app=app, at=timezone.now())
    enqueue_on_commit(task_names.RECONCILE)
    # Its hostnames leave the routers now, not at the next periodic pass: a push for the app alone would
    # find nothing of it in the route table, so a whole pass, which removes what the table lacks.
    enqueue_on_commit(task_names.ROUTES_SYNC)
    audit_record(
        actor=actor, action="app.delete", target=app, organization=app.organization, changes={"name": app.name}
    )
    app.delete()
