"""Creating, changing and deleting apps. Every change is audited."""

from django.db import IntegrityError, transaction

from berth.audit.services import audit_record
from berth.core.errors import Conflict
from berth.tenancy.models import Organization, User

from .models import App


@transaction.atomic
def app_create(*, actor: User, organization: Organization, name: str, description: str = "") -> App:
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
    audit_record(
        actor=actor, action="app.delete", target=app, organization=app.organization, changes={"name": app.name}
    )
    app.delete()
