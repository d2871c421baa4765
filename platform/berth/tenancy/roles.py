"""Roles and the one table that says which actions each role may take in its organization."""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"
    BILLING = "billing", "Billing"


class Action(models.TextChoices):
    ORG_VIEW = "org.view"
    ORG_UPDATE = "org.update"
    ORG_DELETE = "org.delete"
    MEMBER_VIEW = "member.view"
    MEMBER_MANAGE = "member.manage"
    # Granting, changing or removing the owner role.
    OWNER_MANAGE = "owner.manage"
    APP_VIEW = "app.view"
    APP_CREATE = "app.create"
    APP_UPDATE = "app.update"
    APP_DELETE = "app.delete"
    # Releases, config, formation, restarts: everything that changes what runs.
    APP_DEPLOY = "app.deploy"
    CONFIG_VIEW = "config.view"
    # Reading an app's log lines, recent and live (docs/logs.md#reading-logs). Not the billing role's:
    # what an app prints is its business, not its bill's.
    LOG_VIEW = "log.view"
    # Adding and removing an app's hostnames: what the router sends to the app (docs/routing.md).
    DOMAIN_MANAGE = "domain.manage"
    # Which registries the organization has logins for (never the passwords).
    REGISTRY_VIEW = "registry.view"
    # Storing, replacing or removing a registry login: it lets every app of the org pull with it.
    REGISTRY_MANAGE = "registry.manage"
    AUDIT_VIEW = "audit.view"
    BILLING_VIEW = "billing.view"


_READ = {Action.ORG_VIEW, Action.MEMBER_VIEW}
_APPS = {
    Action.APP_VIEW,
    Action.APP_CREATE,
    Action.APP_UPDATE,
    Action.APP_DELETE,
    Action.APP_DEPLOY,
    Action.CONFIG_VIEW,
    Action.LOG_VIEW,
    Action.DOMAIN_MANAGE,
    Action.REGISTRY_VIEW,
}
_ADMIN = (
    _READ
    | _APPS
    | {
        Action.ORG_UPDATE,
        Action.MEMBER_MANAGE,
        Action.AUDIT_VIEW,
        Action.BILLING_VIEW,
        Action.REGISTRY_MANAGE,
    }
)

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(_ADMIN | {Action.ORG_DELETE, Action.OWNER_MANAGE}),
    Role.ADMIN: frozenset(_ADMIN),
    Role.DEVELOPER: frozenset(_READ | _APPS),
    Role.VIEWER: frozenset(_READ | {Action.APP_VIEW, Action.LOG_VIEW}),
    Role.BILLING: frozenset(_READ | {Action.APP_VIEW, Action.BILLING_VIEW}),
}


def role_allows(role: str | None, action: str) -> bool:
    return role is not None and action in ROLE_ACTIONS.get(role, frozenset())


def roles_allowing(action: str) -> list[str]:
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]
