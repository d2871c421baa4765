"""Console pages for the fleet: hosts, routers, the sizes containers run at, and the containers observed on hosts."""

from typing import TYPE_CHECKING, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.timesince import timesince

from berth.console.audited import AuditedModelAdmin
from berth.console.readonly import ReadOnlyAdminMixin
from berth.core.errors import BerthError, Conflict
from berth.routing import services as routing

from . import services
from .credentials import CONNECTION_FIELDS, credential_problems
from .models import Container, DockerHost, Router, Size

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec


class WriteOnlyTextarea(forms.Textarea):
    """Takes a secret in and never renders one back out, not even the one just submitted."""

    def format_value(self, value):
        return None


class HostForm(forms.ModelForm):
    tls_client_key = forms.CharField(
        label="TLS client key",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea,
        help_text="PEM; stored encrypted and never shown again. Leave empty to keep the key the host has.",
    )
    ssh_private_key = forms.CharField(
        label="ssh private key",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea,
        help_text="No passphrase; stored encrypted and never shown again. Leave empty to keep the key the host has.",
    )
    SECRETS = ("tls_client_key", "ssh_private_key")

    class Meta:
        model = DockerHost
        fields = [
            "name",
            "engine_url",
            "address",
            "memory_mb",
            "cpu_millis",
            "labels",
            "tls_ca_cert",
            "tls_client_cert",
            "tls_client_key",
            "ssh_private_key",
            "ssh_host_key",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Not even the form's initial data holds a decrypted key; an empty field then means "unchanged".
        for name in self.SECRETS:
            self.initial.pop(name, None)
        self.engine = None  # what the worker found when it connected, for host_register

    def clean_tls_client_key(self):
        return self.cleaned_data["tls_client_key"] or self.instance.tls_client_key

    def clean_ssh_private_key(self):
        return self.cleaned_data["ssh_private_key"] or self.instance.ssh_private_key

    def clean(self):
        """The same checks as the API: the credentials fit the URL, and a worker reached the engine with
        them, on registration and whenever the connection changes."""
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        connection = {name: data.get(name) or "" for name in CONNECTION_FIELDS}
        for field, reasons in credential_problems(**connection).items():
            self.add_error(field, reasons)
        if self.errors:
            return data
        changed = self.instance.pk is None or any(
            connection[name] != (getattr(self.instance, name) or "") for name in CONNECTION_FIELDS
        )
        if changed:
            try:
                self.engine = services.host_connection_test(**connection)
            except BerthError as error:
                self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


class LiveContainerInline(admin.TabularInline):
    model = Container
    verbose_name_plural = "live containers"
    readonly_fields = fields = (
        "name",
        "app",
        "process_type",
        "index",
        "release",
        "state",
        "health",
        "published_port",
        "started_at",
    )
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        live = super().get_queryset(request).filter(state__in=Container.LIVE)
        return live.select_related("app__organization", "release__app")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DockerHost)
class DockerHostAdmin(AuditedModelAdmin):
    audit_name = "host"
    form = HostForm
    list_display = [
        "name",
        "engine_url",
        "address",
        "state",
        "status_and_reason",
        "engine_version",
        "remaps_root",
        "last_heartbeat_at",
        "capacity_used",
        "running",
    ]
    list_filter = ["state", "status", "userns_remap"]
    search_fields = ["name", "address"]
    actions = ["cordon", "drain", "activate", "remove"]
    inlines = [LiveContainerInline]
    add_fieldsets: ClassVar["_FieldsetSpec"] = [
        (None, {"fields": ["name", "engine_url", "address"]}),
        ("Capacity", {"fields": ["memory_mb", "cpu_millis", "labels"]}),
        ("TLS, for tcp:// engines", {"fields": ["tls_ca_cert", "tls_client_cert", "tls_client_key"]}),
        ("ssh, for ssh:// engines", {"fields": ["ssh_private_key", "ssh_host_key"]}),
    ]
    # State changes only through the actions, which audit them and start a drain's reconcile.
    observed = [
        "state",
        "status",
        "capacity_used",
        "engine_version",
        "engine_id",
        "remaps_root",
        "last_heartbeat_at",
        "last_error",
    ]
    fieldsets = [
        *add_fieldsets,
        (
            "State and what the worker observed",
            {"fields": [*observed, "created_at"], "description": f"Status: {DockerHost.STATUS_HELP}"},
        ),
    ]

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj else self.add_fieldsets

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_readonly_fields(self, request, obj=None):
        return [*self.observed, "created_at"] if obj else []

    def get_queryset(self, request):
        live = Q(containers__state__in=Container.LIVE)
        return (
            super()
            .get_queryset(request)
            .annotate(
                memory_used_mb=Sum("containers__size__memory_mb", filter=live, default=0),
                running_count=Count("containers", filter=Q(containers__state=Container.State.RUNNING)),
            )
        )

    @admin.display(ordering="memory_used_mb", description="capacity used")
    def capacity_used(self, host):
        percent = 100 * host.memory_used_mb / host.memory_mb if host.memory_mb else 0
        return f"{host.memory_used_mb} / {host.memory_mb} MB ({percent:.0f}%)"

    @admin.display(boolean=True, ordering="userns_remap", description="remaps user namespaces")
    def remaps_root(self, host):
        # Root in a container is an unprivileged host user here; elsewhere root images run as uid 65534.
        return host.userns_remap

    @admin.display(ordering="status", description="status")
    def status_and_reason(self, host):
        """A degraded or down host says why in the list itself: the operator's first question."""
        if host.status in (DockerHost.Status.DEGRADED, DockerHost.Status.DOWN) and host.last_error:
            return f"{host.status}: {Truncator(host.last_error).chars(200)}"
        return host.status

    @admin.display(ordering="running_count", description="running")
    def running(self, host):
        return host.running_count

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in form.fields}
        host = services.host_register(actor=request.user, engine=form.engine, **fields)
        obj.pk = host.pk  # the admin redirects to, and logs, the object it passed in

    def log_addition(self, request, obj, message):
        # host_register has audited it as "host.register"; only Django's own log remains to be written.
        return admin.ModelAdmin.log_addition(self, request, obj, message)

    def has_delete_permission(self, request, obj=None):
        # Removal goes through host_remove (the action below): it refuses a host that still runs
        # containers and keeps, retired, one whose containers are on record. Django's delete does neither.
        return False

    def _set_state(self, request, queryset, state):
        hosts = [host for host in queryset if host.state != state]
        for host in hosts:
            services.host_set_state(actor=request.user, host=host, state=state)
        names = ", ".join(host.name for host in hosts) or "no host (all were already)"
        self.message_user(request, f"{DockerHost.State(state).label}: {names}.", messages.SUCCESS)

    @admin.action(description="Cordon: place no new containers", permissions=["change"])
    def cordon(self, request, queryset):
        self._set_state(request, queryset, DockerHost.State.CORDONED)

    @admin.action(description="Drain: move containers away", permissions=["change"])
    def drain(self, request, queryset):
        self._set_state(request, queryset, DockerHost.State.DRAINING)

    @admin.action(description="Activate: take new containers", permissions=["change"])
    def activate(self, request, queryset):
        self._set_state(request, queryset, DockerHost.State.ACTIVE)

    @admin.action(description="Remove from the fleet", permissions=["change"])
    def remove(self, request, queryset):
        for host in queryset.exclude(state=DockerHost.State.RETIRED):
            try:
                services.host_remove(actor=request.user, host=host)
            except Conflict as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"Removed {host.name} from the fleet.", messages.SUCCESS)


class RouterForm(forms.ModelForm):
    class Meta:
        model = Router
        fields = ["name", *routing.ROUTER_FIELDS]

    def clean(self):
        """The service's checks (an admin endpoint on this machine only, ports in range), shown next to
        their field before anything is saved."""
        super().clean()
        data = self.cleaned_data
        if not self.errors:
            fields = {name: data.get(name) for name in routing.ROUTER_FIELDS}
            try:
                routing.router_check(fields)
            except BerthError as error:
                self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


@admin.register(Router)
class RouterAdmin(AuditedModelAdmin):
    """Routers are registered and changed through the routing services, which record each change and ask
    the worker to bring the routers in step; their state changes only through the actions."""

    audit_name = "router"
    form = RouterForm
    list_display = ["name", "public_address", "ports", "state", "status_and_reason", "routes_held", "last_synced_at"]
    list_filter = ["state", "status"]
    search_fields = ["name", "public_address"]
    actions = ["disable", "activate", "remove"]
    observed = ["state", "status", "capacity", "routes", "last_synced_at", "last_error", "created_at"]
    add_fieldsets: ClassVar["_FieldsetSpec"] = [(None, {"fields": ["name", *routing.ROUTER_FIELDS]})]
    fieldsets = [
        *add_fieldsets,
        (
            "State and what the worker observed",
            {
                "fields": [*observed],
                "description": "Status: pending (not synced yet), up, or down (its admin endpoint does not answer; "
                "deploys go on, and the router is caught up when it answers again).",
            },
        ),
    ]

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj else self.add_fieldsets

    def get_readonly_fields(self, request, obj=None):
        # A router keeps its name: the audit log and the worker's records name it.
        return ["name", *self.observed] if obj else []

    @admin.display(description="ports (http / https)")
    def ports(self, router):
        return f"{router.http_port} / {router.https_port}"

    @admin.display(ordering="status", description="status")
    def status_and_reason(self, router):
        """A router that is down says why in the list itself, as a host does."""
        if router.status == Router.Status.DOWN and router.last_error:
            return f"down: {Truncator(router.last_error).chars(200)}"
        return router.status

    @admin.display(ordering="routes", description="apps held / capacity")
    def routes_held(self, router):
        if router.capacity is None:
            return "-"
        return f"{router.routes or 0} / {router.capacity}"

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in routing.ROUTER_FIELDS}
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            routing.router_update(actor=request.user, router=obj, **changed)
        else:
            obj.pk = routing.router_register(actor=request.user, name=form.cleaned_data["name"], **fields).pk

    def log_addition(self, request, obj, message):
        # router_register has audited it as "router.register".
        return admin.ModelAdmin.log_addition(self, request, obj, message)

    def log_change(self, request, obj, message):
        # router_update has audited what changed, if anything did.
        return admin.ModelAdmin.log_change(self, request, obj, message)

    def has_delete_permission(self, request, obj=None):
        # Removal goes through router_remove (the action below), which audits it.
        return False

    def _set_state(self, request, queryset, state):
        routers = [router for router in queryset if router.state != state]
        for router in routers:
            routing.router_update(actor=request.user, router=router, state=state)
        names = ", ".join(router.name for router in routers) or "no router (all were already)"
        self.message_user(request, f"{Router.State(state).label}: {names}.", messages.SUCCESS)

    @admin.action(description="Disable: stop keeping them in step", permissions=["change"])
    def disable(self, request, queryset):
        self._set_state(request, queryset, Router.State.DISABLED)

    @admin.action(description="Activate: keep them in step", permissions=["change"])
    def activate(self, request, queryset):
        self._set_state(request, queryset, Router.State.ACTIVE)

    @admin.action(description="Remove: forget them (they serve what they hold until stopped)", permissions=["change"])
    def remove(self, request, queryset):
        names = []
        for router in queryset:
            routing.router_remove(actor=request.user, router=router)
            names.append(router.name)
        self.message_user(request, f"Removed {', '.join(names)}.", messages.SUCCESS)


class SizeForm(forms.ModelForm):
    # Not the model's field: making a size the default takes the flag from the old default, which
    # the one-default constraint would refuse if the form validated the model's flag on its own.
    make_default = forms.BooleanField(label="Default size", required=False)

    class Meta:
        model = Size
        fields = ["name", "memory_mb", "cpu_millis"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["make_default"].initial = self.instance.is_default


@admin.register(Size)
class SizeAdmin(AuditedModelAdmin):
    form = SizeForm
    list_display = ["name", "memory_mb", "cpu_millis", "is_default"]

    def get_readonly_fields(self, request, obj=None):
        # Live containers run with the limits they started with; changing them here would make
        # hosts' capacity accounting disagree with what the engines enforce.
        if obj and Container.objects.filter(size=obj, state__in=Container.LIVE).exists():
            return ["memory_mb", "cpu_millis"]
        return []

    def save_model(self, request, obj, form, change):
        fields = {"name": obj.name, "memory_mb": obj.memory_mb, "cpu_millis": obj.cpu_millis}
        is_default = form.cleaned_data["make_default"]
        if change:
            services.size_update(actor=request.user, size=obj, is_default=is_default, **fields)
        else:
            obj.pk = services.size_create(actor=request.user, is_default=is_default, **fields).pk

    def log_addition(self, request, obj, message):
        # size_create has audited it.
        return admin.ModelAdmin.log_addition(self, request, obj, message)

    def log_change(self, request, obj, message):
        # size_update has audited it.
        return admin.ModelAdmin.log_change(self, request, obj, message)


@admin.register(Container)
class ContainerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every container the worker observed, fleet-wide; read-only, the worker owns these rows."""

    list_display = [
        "name",
        "organization",
        "app_name",
        "process_type",
        "index",
        "release_version",
        "host",
        "state",
        "health",
        "published_port",
        "started_at",
        "finished_at",
        "uptime",
    ]
    list_filter = ["state", "health", "host", "process_type"]
    search_fields = ["name", "app__name", "organization__slug"]
    list_select_related = ["organization", "app", "release", "host"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False

    @admin.display(ordering="app__name", description="app")
    def app_name(self, container):
        return container.app.name

    @admin.display(ordering="release__version", description="release")
    def release_version(self, container):
        return f"v{container.release.version}"

    @admin.display(description="uptime")
    def uptime(self, container):
        if container.started_at is None:
            return "-"
        running = container.state == Container.State.RUNNING
        end = timezone.now() if running else container.finished_at or container.last_seen_at
        return timesince(container.started_at, end) if end else "-"
