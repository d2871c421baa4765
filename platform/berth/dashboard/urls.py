"""Routes of the tenant dashboard, at /. Every route under orgs/<org_slug>/ is wrapped in
`access.org_page`, so a foreign organization is a 404 and a missing right a 403, as in the API."""

from django.urls import include, path

from .views import account, apps, audit, billing, config, domains, logs, members, metrics, orgs, releases, runs, tokens

app_name = "dashboard"

APP = "orgs/<str:org_slug>/apps/<str:app_name>/"

account_patterns = [
    path("signin/", account.signin, name="signin"),
    path("signout/", account.signout, name="signout"),
    path("signup/", account.signup, name="signup"),
    path("account/password/", account.password_change, name="password-change"),
    path("password-reset/", account.password_reset, name="password-reset"),
    path("password-reset/sent/", account.password_reset_sent, name="password-reset-sent"),
    path("password-reset/<uidb64>/<token>/", account.password_reset_confirm, name="password-reset-confirm"),
    path("password-reset/done/", account.password_reset_done, name="password-reset-done"),
    path("invitations/<str:token>/", account.invitation_accept, name="invitation-accept"),
    path("account/tokens/", tokens.token_list, name="tokens"),
    path("account/tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token-revoke"),
]

org_patterns = [
    path("", orgs.home, name="home"),
    path("orgs/new/", orgs.org_create, name="org-create"),
    path("orgs/<str:org_slug>/", orgs.org_home, name="org-home"),
    path("orgs/<str:org_slug>/apps/new/", apps.app_create, name="app-create"),
    path("orgs/<str:org_slug>/members/", members.member_list, name="members"),
    path("orgs/<str:org_slug>/members/invite/", members.invite, name="member-invite"),
    path("orgs/<str:org_slug>/members/leave/", members.leave, name="member-leave"),
    path("orgs/<str:org_slug>/members/<int:membership_id>/role/", members.role_change, name="member-role"),
    path("orgs/<str:org_slug>/members/<int:membership_id>/remove/", members.member_remove, name="member-remove"),
    path(
        "orgs/<str:org_slug>/invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke,
        name="invitation-revoke",
    ),
    path("orgs/<str:org_slug>/usage/", billing.usage, name="usage"),
    path("orgs/<str:org_slug>/usage.csv", billing.usage_csv, name="usage-csv"),
    path("orgs/<str:org_slug>/invoices/<str:period>/", billing.invoice_detail, name="invoice"),
    path("orgs/<str:org_slug>/audit/", audit.audit_log, name="audit"),
]

app_patterns = [
    path(APP, apps.app_overview, name="app"),
    path(f"{APP}live/", apps.app_live, name="app-live"),
    path(f"{APP}delete/", apps.app_delete, name="app-delete"),
    path(f"{APP}deploy/", apps.deploy, name="app-deploy"),
    path(f"{APP}formation/", apps.formation_scale, name="app-scale"),
    path(f"{APP}canary/promote/", apps.canary_promote, name="app-canary-promote"),
    path(f"{APP}canary/abort/", apps.canary_abort, name="app-canary-abort"),
    path(f"{APP}releases/", releases.release_list, name="releases"),
    path(f"{APP}metrics/", metrics.app_metrics_page, name="metrics"),
    path(f"{APP}releases/<int:version>/rollback/", releases.rollback, name="release-rollback"),
    path(f"{APP}config/", config.config_vars, name="config"),
    path(f"{APP}config/reveal/", config.config_reveal, name="config-reveal"),
    path(f"{APP}domains/", domains.domain_list, name="domains"),
    path(f"{APP}domains/<str:hostname>/remove/", domains.domain_remove, name="domain-remove"),
    path(f"{APP}routing/", domains.routing_update, name="app-routing"),
    path(f"{APP}logs/", logs.app_logs, name="app-logs"),
    path(f"{APP}logs/download/", logs.app_logs_download, name="app-logs-download"),
    path(f"{APP}runs/", runs.run_list, name="runs"),
    path(f"{APP}runs/<int:run_id>/", runs.run_detail, name="run"),
]

urlpatterns = [path("", include(account_patterns)), path("", include(org_patterns)), path("", include(app_patterns))]
