"""Request and response shapes of the tenant API. Serializers validate; services decide."""

from typing import cast

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from berth.applications.models import App, Formation, RegistryCredential, Release
from berth.applications.registries import MAX_PASSWORD_LENGTH
from berth.applications.specs import IMAGE_REFERENCE
from berth.audit.models import AuditEvent
from berth.billing.models import Invoice, InvoiceLine
from berth.core.validators import slug_validator
from berth.deployments.canary import MAX_WEIGHT, MIN_WEIGHT
from berth.deployments.models import Canary, Deployment, DeploymentStep, Run
from berth.deployments.selectors import app_state, run_output
from berth.fleet.credentials import credential_problems
from berth.fleet.models import Container, DockerHost, Router, Size
from berth.routing.hostnames import default_hostname
from berth.routing.models import Domain
from berth.routing.selectors import PublicPorts, app_urls, hostname_urls, public_ports
from berth.tenancy.models import ApiToken, Invitation, Membership, Organization, User
from berth.tenancy.roles import Role


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo is an error instead of a silent no-op."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
            if unknown:
                raise serializers.ValidationError({name: ["This field is not accepted here."] for name in unknown})
        return super().to_internal_value(data)


class _AsSent(serializers.Field):
    """A value handed to the service as the JSON body has it, for the service's rule to accept or refuse by
    name: parsed here first ("1" read as 1, say), it would pass a check the service is the one place of."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanAsSent(_AsSent):
    pass


@extend_schema_field(OpenApiTypes.INT)
class IntegerAsSent(_AsSent):
    pass


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
class CommandAsSent(_AsSent):
    """A command, as a string split like a shell would (no shell operators) or a list of arguments."""


@extend_schema_field(OpenApiTypes.STR)
class StringAsSent(_AsSent):
    pass


def _public_ports(serializer: serializers.Field) -> PublicPorts:
    """The routers' ports, read once per response however many rows it shows. The context is the root
    serializer's own dict (typed as a read-only mapping), shared by every row."""
    context = cast(dict, serializer.context)
    if "public_ports" not in context:
        context["public_ports"] = public_ports()
    return context["public_ports"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "date_joined"]
        read_only_fields = ["id", "email", "date_joined"]


class MeUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, allow_blank=True)


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="Your role in this organization.")

    class Meta:
        model = Organization
        fields = ["slug", "name", "role", "created_at"]
        read_only_fields = ["created_at"]


class OrganizationCreateSerializer(StrictSerializer):
    slug = serializers.CharField(max_length=40, validators=[slug_validator])
    name = serializers.CharField(max_length=100)


class OrganizationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]


class MembershipUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at"]


class InvitationCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreatedSerializer(InvitationSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown only in this response.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]


class InvitationAcceptSerializer(StrictSerializer):
    token = serializers.CharField(max_length=200)


class ApiTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown only in this response; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class UrlsSerializer(serializers.Serializer):
    http = serializers.CharField(help_text="Plain HTTP (redirected to HTTPS when the app is https_only)")
    https = serializers.CharField()


class AppSerializer(serializers.ModelSerializer):
    organization: "serializers.SlugRelatedField[Organization]" = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    hostname = serializers.SerializerMethodField(
        help_text="The hostname Berth gives the app, <app>.<org>.<apps domain>; those added are under domains/"
    )
    urls = serializers.SerializerMethodField(
        help_text="Where the app answers at its hostname: on the ports of the first active router by name, "
        "or 80 and 443 while there is none"
    )
    https_only = serializers.BooleanField(read_only=True, help_text="Plain HTTP requests are redirected to HTTPS")
    drain_timeout_s = serializers.IntegerField(
        read_only=True,
        help_text="How long a replica leaving the routes may finish its requests before it is stopped anyway",
    )

    class Meta:
        model = App
        fields = [
            "name",
            "organization",
            "description",
            "hostname",
            "urls",
            "https_only",
            "drain_timeout_s",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_hostname(self, app) -> str:
        return default_hostname(app.name, app.organization.slug)

    @extend_schema_field(UrlsSerializer)
    def get_urls(self, app) -> dict:
        return app_urls(app, _public_ports(self))


class ProcessStateSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(help_text="How many containers the formation asks for.")
    size = serializers.CharField()
    running = serializers.DictField(
        child=serializers.IntegerField(),
        help_text='Live containers per release, e.g. {"v1": 2, "v2": 1} while a rollout replaces v1 with v2.',
    )


class CanaryProcessSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(help_text="How many canary replicas run beside the release's.")
    size = serializers.CharField()
    running = serializers.DictField(child=serializers.IntegerField(), help_text="Live canary replicas per release.")


class CanaryStateSerializer(serializers.Serializer):
    release = serializers.IntegerField(help_text="The canary's version.")
    weight = serializers.IntegerField(help_text="The share of the requests its replicas get, in percent.")
    processes = serializers.DictField(
        child=CanaryProcessSerializer(), help_text="The process types it runs: those that take HTTP in both releases."
    )


class AppStateSerializer(serializers.Serializer):
    release = serializers.IntegerField(allow_null=True, help_text="The version that runs (its deployment succeeded).")
    target_release = serializers.IntegerField(
        allow_null=True,
        help_text="The version Berth is moving the app to; every scale or config change applies to it "
        "(the release that runs once no deployment is under way).",
    )
    deploying = serializers.BooleanField(help_text="Whether a deployment of the app is queued or running.")
    processes = serializers.DictField(
        child=ProcessStateSerializer(), help_text="The release's replicas; a canary's are under `canary`."
    )
    canary = CanaryStateSerializer(
        allow_null=True, help_text="The active canary, running beside the release (docs/deploys.md#canary-releases)."
    )


class AppDetailSerializer(AppSerializer):
    """An app with what it runs and where it is going (deployments.selectors.app_state)."""

    state = serializers.SerializerMethodField()

    class Meta(AppSerializer.Meta):
        fields = [*AppSerializer.Meta.fields, "state"]

    @extend_schema_field(AppStateSerializer)
    def get_state(self, app) -> dict:
        return app_state(app)


class AppCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=30, validators=[slug_validator])
    description = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class AppUpdateSerializer(StrictSerializer):
    """Any of the app's settings; those left out keep their value."""

    description = serializers.CharField(max_length=500, allow_blank=True, required=False)
    https_only = BooleanAsSent(required=False, help_text="Redirect plain HTTP requests to HTTPS")
    drain_timeout_s = IntegerAsSent(
        required=False,
        help_text="Seconds, 1 to 900: how long a replica leaving the routes may finish its requests before it "
        "is stopped anyway",
    )


# --- domains and routers ---------------------------------------------------------------------------


class DomainSerializer(serializers.ModelSerializer):
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    urls = serializers.SerializerMethodField(help_text="On the ports of the first active router by name")

    class Meta:
        model = Domain
        fields = ["hostname", "urls", "created_at", "created_by"]

    @extend_schema_field(UrlsSerializer)
    def get_urls(self, domain) -> dict:
        return hostname_urls(domain.hostname, _public_ports(self))


class DomainCreateSerializer(StrictSerializer):
    hostname = serializers.CharField(
        allow_blank=True,
        help_text="A hostname such as www.example.com: no scheme, port, path or wildcard; not under the apps "
        "domain, where Berth names apps; free in the whole installation. Point its DNS at the routers.",
    )


class RouterSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(
        choices=Router.State.choices,
        read_only=True,
        help_text="The operator's intent: active routers are kept in step with the route table, disabled ones are not",
    )
    status = serializers.ChoiceField(
        choices=Router.Status.choices,
        read_only=True,
        help_text="What the worker last saw: pending (not synced yet), up, or down (its admin endpoint does not "
        "answer; it is caught up when it answers again)",
    )
    capacity = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="How many apps the router can hold (its backends)"
    )
    routes = serializers.IntegerField(read_only=True, allow_null=True, help_text="How many apps it holds now")
    last_error = serializers.CharField(read_only=True, help_text="Why it is down; empty when it is up")

    class Meta:
        model = Router
        fields = [
            "id",
            "name",
            "admin_url",
            "public_address",
            "http_port",
            "https_port",
            "state",
            "status",
            "capacity",
            "routes",
            "last_synced_at",
            "last_error",
            "created_at",
        ]


_ADMIN_URL_HELP = (
    "HAProxy's runtime API: unix:///path/admin.sock, or tcp://127.0.0.1:PORT on the worker's machine (it has no "
    "credentials, so never an address beyond the loopback interface)"
)


class RouterCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=40, validators=[slug_validator])
    admin_url = serializers.CharField(max_length=255, allow_blank=True, help_text=_ADMIN_URL_HELP)
    public_address = serializers.CharField(
        max_length=255, help_text="The address (or DNS name) clients reach the router at"
    )
    http_port = IntegerAsSent(required=False, help_text="Where it takes plain HTTP; 80 if left out")
    https_port = IntegerAsSent(required=False, help_text="Where it takes HTTPS; 443 if left out")


class RouterUpdateSerializer(StrictSerializer):
    admin_url = serializers.CharField(max_length=255, allow_blank=True, required=False, help_text=_ADMIN_URL_HELP)
    public_address = serializers.CharField(max_length=255, required=False)
    http_port = IntegerAsSent(required=False)
    https_port = IntegerAsSent(required=False)
    state = serializers.ChoiceField(
        choices=Router.State.choices, required=False, help_text="disabled: Berth stops keeping it in step"
    )


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_email", read_only=True)
    organization = serializers.CharField(source="organization_slug", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "organization",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "source",
            "ip_address",
            "changes",
        ]


class RegistryCredentialSerializer(serializers.ModelSerializer):
    """A registry login as the API shows it: never the password."""

    class Meta:
        model = RegistryCredential
        fields = ["id", "registry", "username", "created_at", "updated_at"]


class RegistryCredentialSetSerializer(StrictSerializer):
    registry = serializers.CharField(
        max_length=255, help_text="Host and optional port as in an image name: registry.example.com, 10.0.0.5:5000."
    )
    username = serializers.CharField(max_length=255)
    password = serializers.CharField(
        max_length=MAX_PASSWORD_LENGTH, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )


# --- releases, config, formation, deployments, containers ---------------------------------------


class ReleaseSerializer(serializers.ModelSerializer):
    author: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    config_keys = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "version",
            "image",
            "image_digest",
            "process_types",
            "release_command",
            "config_keys",
            "description",
            "author",
            "rollback_of",
            "created_at",
        ]

    def get_config_keys(self, release) -> list[str]:
        return sorted(release.config)


class ReleaseCreateSerializer(StrictSerializer):
    image = serializers.RegexField(
        IMAGE_REFERENCE,
        max_length=255,
        error_messages={"invalid": "Give an image reference such as registry.example.com/team/app:1.2 or app@sha256:…"},
    )
    process_types = serializers.JSONField(
        required=False,
        default=None,
        help_text=(
            'Keyed by name: {"web": {"command": ["./server"], "port": 8080, "health_check": {"type": "http", '
            '"path": "/health"}}}'
        ),
    )
    description = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    release_command = CommandAsSent(
        required=False,
        default=None,
        help_text="Run once before any container of the release serves, such as migrations; if it fails or "
        "times out, the deployment fails and the release that runs keeps serving (docs/deploys.md).",
    )
    release_timeout = IntegerAsSent(
        required=False, default=None, help_text="Seconds the release command may take (default 30 minutes)."
    )


_WEIGHT_RULE = f"A canary's weight is a whole number from {MIN_WEIGHT} to {MAX_WEIGHT} (percent of the requests)."


class ReleaseOrCanaryCreateSerializer(ReleaseCreateSerializer):
    canary_weight = serializers.IntegerField(
        required=False,
        default=None,
        min_value=MIN_WEIGHT,
        max_value=MAX_WEIGHT,
        error_messages={"invalid": _WEIGHT_RULE, "min_value": _WEIGHT_RULE, "max_value": _WEIGHT_RULE},
        help_text="Deploy the release as a canary beside the release that runs, taking this percentage of the "
        "requests of the process types that take HTTP, until it is promoted or aborted (canary/).",
    )


class CanaryWeightSerializer(StrictSerializer):
    weight = serializers.IntegerField(
        min_value=MIN_WEIGHT,
        max_value=MAX_WEIGHT,
        error_messages={"invalid": _WEIGHT_RULE, "min_value": _WEIGHT_RULE, "max_value": _WEIGHT_RULE},
    )


class CanarySerializer(serializers.ModelSerializer):
    """A canary: its release and share of the requests, who started and ended it, and (while it is active)
    its replicas."""

    release = serializers.IntegerField(source="release.version", read_only=True)
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    ended_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    processes = serializers.SerializerMethodField()

    class Meta:
        model = Canary
        fields = [
            "release",
            "weight",
            "state",
            "created_by",
            "created_at",
            "ended_by",
            "ended_at",
            "reason",
            "processes",
        ]

    @extend_schema_field(serializers.DictField(child=CanaryProcessSerializer()))
    def get_processes(self, canary) -> dict:
        if canary.state != Canary.State.ACTIVE:
            return {}
        state = app_state(canary.app)["canary"]
        return state["processes"] if state else {}


class RollbackSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class DeploymentStepSerializer(serializers.ModelSerializer):
    host: "serializers.SlugRelatedField[DockerHost]" = serializers.SlugRelatedField(slug_field="name", read_only=True)
    container: "serializers.SlugRelatedField[Container]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = DeploymentStep
        fields = ["at", "message", "host", "container"]


class DeploymentSerializer(serializers.ModelSerializer):
    release = serializers.IntegerField(source="release.version", read_only=True)
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "kind",
            "state",
            "release",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "attempts",
            "error",
        ]


class DeploymentDetailSerializer(DeploymentSerializer):
    steps = DeploymentStepSerializer(many=True, read_only=True)
    containers_started = serializers.SerializerMethodField()
    containers_stopped = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "containers_started", "containers_stopped", "steps"]

    def get_containers_started(self, deployment) -> list[str]:
        return [c.name for c in deployment.containers.all()]

    def get_containers_stopped(self, deployment) -> list[str]:
        return [s.container.name for s in deployment.steps.all() if s.container and s.message.startswith("Stopping")]


class ReleaseDeployedSerializer(serializers.Serializer):
    release = ReleaseSerializer()
    deployment = DeploymentSerializer()
    canary = CanarySerializer(required=False, help_text="When the release was deployed as a canary.")


class CanaryChangedSerializer(serializers.Serializer):
    canary = CanarySerializer()
    deployment = DeploymentSerializer(allow_null=True)


class ConfigSerializer(serializers.Serializer):
    config = serializers.DictField(child=serializers.CharField(allow_blank=True))


class ConfigUpdateSerializer(serializers.Serializer):
    config = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True, max_length=32768),
        allow_empty=False,
        help_text="KEY: value to set, KEY: null to unset.",
    )


class ConfigUpdatedSerializer(serializers.Serializer):
    config = serializers.DictField(child=serializers.CharField(allow_blank=True))
    release = ReleaseSerializer(allow_null=True)
    deployment = DeploymentSerializer(allow_null=True)


class FormationSerializer(serializers.ModelSerializer):
    size: "serializers.SlugRelatedField[Size]" = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Formation
        fields = ["process_type", "quantity", "size", "updated_at"]


class FormationChangeSerializer(StrictSerializer):
    quantity = serializers.IntegerField(min_value=0, max_value=100, required=False)
    size = serializers.CharField(max_length=40, required=False)


class FormationUpdateSerializer(serializers.Serializer):
    formation = serializers.DictField(
        child=FormationChangeSerializer(), allow_empty=False, help_text='{"web": {"quantity": 3, "size": "small"}}'
    )


class FormationUpdatedSerializer(serializers.Serializer):
    formation = FormationSerializer(many=True)
    deployment = DeploymentSerializer(allow_null=True)


class ContainerSerializer(serializers.ModelSerializer):
    host: "serializers.SlugRelatedField[DockerHost]" = serializers.SlugRelatedField(slug_field="name", read_only=True)
    address = serializers.IPAddressField(source="host.address", read_only=True)
    release = serializers.IntegerField(source="release.version", read_only=True)
    size: "serializers.SlugRelatedField[Size]" = serializers.SlugRelatedField(slug_field="name", read_only=True)
    uptime_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Container
        fields = [
            "id",
            "name",
            "process_type",
            "index",
            "canary",
            "release",
            "size",
            "host",
            "address",
            "published_port",
            "state",
            "health",
            "started_at",
            "finished_at",
            "uptime_seconds",
            "exit_code",
        ]

    def get_uptime_seconds(self, container) -> int | None:
        if container.started_at is None:
            return None
        end = container.finished_at or timezone.now()
        return max(int((end - container.started_at).total_seconds()), 0)


class ReplacementSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The deployment's id (deployments/{id}/)")
    kind = serializers.ChoiceField(choices=Deployment.Kind.choices)
    state = serializers.ChoiceField(choices=Deployment.State.choices)
    created_at = serializers.DateTimeField()


class ContainerExitSerializer(serializers.Serializer):
    """One container that ended on its own (fleet.selectors.container_exits)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    process_type = serializers.CharField()
    index = serializers.IntegerField()
    state = serializers.ChoiceField(
        choices=[(state.value, state.label) for state in (Container.State.EXITED, Container.State.LOST)],
        help_text="exited: the process ended (a crash, an OOM kill, or a normal exit); lost: its host was lost",
    )
    host = serializers.CharField()
    release = serializers.IntegerField(help_text="The release version it ran")
    exit_code = serializers.IntegerField(allow_null=True, help_text="As the host reported it; 137 is a SIGKILL")
    oom_killed = serializers.BooleanField(help_text="Killed by the kernel for exceeding its size's memory")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(help_text="When it ended, or was last seen running if its host was lost")
    ran_seconds = serializers.DecimalField(
        max_digits=20, decimal_places=3, allow_null=True, help_text="From start to finish, to the millisecond"
    )
    replaced_by = ReplacementSerializer(
        allow_null=True, help_text="The deployment that started the next container in its slot; null until one did"
    )


class ContainerExitsSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="Exits from this moment on (the last 24 hours)")
    per_process_type = serializers.IntegerField(help_text="At most this many of each process type, the newest")
    exits = ContainerExitSerializer(many=True)


class RestartSerializer(StrictSerializer):
    process_type = serializers.CharField(max_length=30, required=False, default="", allow_blank=True)
    container = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


class SizeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Size
        fields = ["name", "memory_mb", "cpu_millis", "is_default"]


class SizeCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=40, validators=[slug_validator])
    memory_mb = serializers.IntegerField(min_value=16, max_value=1024 * 1024)
    cpu_millis = serializers.IntegerField(min_value=10, max_value=256_000)
    is_default = serializers.BooleanField(default=False)


class DockerHostSerializer(serializers.ModelSerializer):
    containers_running = serializers.IntegerField(read_only=True)
    memory_used_mb = serializers.IntegerField(read_only=True)
    userns_remap = serializers.BooleanField(
        read_only=True,
        help_text="The engine remaps user namespaces: root in a container is an unprivileged user on the host, "
        "so images that run as root run as root here (elsewhere as uid 65534) and are placed here first",
    )
    status = serializers.ChoiceField(
        choices=DockerHost.Status.choices, read_only=True, help_text=DockerHost.STATUS_HELP
    )
    last_error = serializers.CharField(
        read_only=True,
        help_text="Why the host is degraded or down: what the heartbeat last saw; empty when it is up.",
    )

    class Meta:
        model = DockerHost
        fields = [
            "id",
            "name",
            "engine_url",
            "address",
            "memory_mb",
            "cpu_millis",
            "labels",
            "state",
            "status",
            "engine_version",
            "userns_remap",
            "ssh_host_key",
            "last_heartbeat_at",
            "last_error",
            "containers_running",
            "memory_used_mb",
            "created_at",
        ]


class DockerHostCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=40, validators=[slug_validator])
    engine_url = serializers.RegexField(
        r"^(unix:///[^\s]+|tcp://[^\s/]+:\d{1,5}|ssh://[^\s]+)\Z",
        max_length=255,
        error_messages={"invalid": "Use unix:///path, tcp://host:port or ssh://user@host."},
    )
    address = serializers.IPAddressField()
    memory_mb = serializers.IntegerField(min_value=64, max_value=64 * 1024 * 1024)
    cpu_millis = serializers.IntegerField(min_value=100, max_value=1_024_000)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False, default=dict)
    tls_ca_cert = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=20000, help_text="PEM; tcp:// engines"
    )
    tls_client_cert = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=20000, help_text="PEM; tcp:// engines"
    )
    tls_client_key = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=20000, write_only=True, trim_whitespace=False
    )
    ssh_private_key = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=20000, write_only=True, trim_whitespace=False
    )
    ssh_host_key = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=20000,
        help_text="ssh:// engines: the server's public host key, a line of ssh-keyscan, or its SHA256: fingerprint",
    )

    def validate(self, data):
        # What each scheme needs, read before any worker is asked to connect (berth.fleet.credentials).
        problems = credential_problems(**data)
        if problems:
            raise serializers.ValidationError(problems)
        return data


class DockerHostUpdateSerializer(StrictSerializer):
    state = serializers.ChoiceField(
        choices=[
            state.value for state in (DockerHost.State.ACTIVE, DockerHost.State.CORDONED, DockerHost.State.DRAINING)
        ]
    )


# --- billing ------------------------------------------------------------------------------------


def _seconds(help_text: str) -> serializers.DecimalField:
    # A decimal string like every decimal of the API (amounts, prices), so JSON and CSV read the same.
    return serializers.DecimalField(max_digits=20, decimal_places=3, help_text=help_text)


class UsageRowSerializer(serializers.Serializer):
    app = serializers.CharField(required=False)
    process_type = serializers.CharField(required=False)
    size = serializers.CharField(required=False)
    day = serializers.DateField(required=False)
    seconds = _seconds("Exact seconds, rounded half up to the millisecond")
    cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class UsageReportSerializer(serializers.Serializer):
    period = serializers.CharField()
    currency = serializers.CharField()
    group_by = serializers.ListField(child=serializers.CharField())
    rows = UsageRowSerializer(many=True)
    total_seconds = _seconds("The sum of the rows' seconds")
    total_cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class InvoiceLineSerializer(serializers.ModelSerializer):
    seconds = _seconds("Exact seconds of the line, rounded half up to the millisecond; the amount uses the exact ones")

    class Meta:
        model = InvoiceLine
        fields = ["app_name", "process_type", "size_name", "price_per_hour", "seconds", "amount", "adjustment_for"]


class InvoiceSerializer(serializers.ModelSerializer):
    period = serializers.DateField(format="%Y-%m")

    class Meta:
        model = Invoice
        fields = ["period", "state", "currency", "total", "generated_at", "finalized_at"]


class InvoiceDetailSerializer(InvoiceSerializer):
    # `line_list`: a stored invoice's lines prefetched, or the live draft's (billing.invoicing.draft_live).
    lines = InvoiceLineSerializer(many=True, read_only=True, source="line_list")

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "lines"]


class QuotaSerializer(serializers.Serializer):
    max_apps = serializers.IntegerField()
    max_containers = serializers.IntegerField()
    max_memory_mb = serializers.IntegerField()
    apps = serializers.IntegerField()
    containers = serializers.IntegerField()
    memory_mb = serializers.IntegerField()


# --- metrics (docs/metrics.md) ---


class ProcessMetricsPointSerializer(serializers.Serializer):
    time = serializers.DateTimeField()
    cpu_millis = serializers.FloatField(allow_null=True, help_text="Mean CPU, thousandths of a core")
    cpu_max_millis = serializers.FloatField(allow_null=True, help_text="Highest reading in the point")
    memory_bytes = serializers.IntegerField(allow_null=True, help_text="Mean memory in use (less page cache)")
    memory_max_bytes = serializers.IntegerField(allow_null=True)
    restarts = serializers.IntegerField(help_text="Containers of the slot that exited or were lost")


class ProcessMetricsSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="process type and index, as in the logs: web.1 (web.1 canary for a canary's)"
    )
    process_type = serializers.CharField()
    index = serializers.IntegerField()
    canary = serializers.BooleanField(help_text="a replica of the app's canary, numbered apart from the release's")
    cpu_limit_millis = serializers.IntegerField()
    memory_limit_bytes = serializers.IntegerField()
    restarts = serializers.IntegerField()
    points = ProcessMetricsPointSerializer(many=True)


class RequestCountsSerializer(serializers.Serializer):
    """Requests and their answers by status class: over a period, and over each of its points."""

    requests = serializers.IntegerField()
    status_1xx = serializers.IntegerField()
    status_2xx = serializers.IntegerField()
    status_3xx = serializers.IntegerField()
    status_4xx = serializers.IntegerField()
    status_5xx = serializers.IntegerField()
    status_other = serializers.IntegerField()


class RequestMetricsPointSerializer(RequestCountsSerializer):
    time = serializers.DateTimeField()
    per_second = serializers.FloatField()
    response_ms = serializers.FloatField(allow_null=True, help_text="Mean time to the response's first byte")
    total_ms = serializers.FloatField(allow_null=True, help_text="Mean time of the whole request")


class RequestMetricsSerializer(RequestCountsSerializer):
    points = RequestMetricsPointSerializer(many=True)


class AppMetricsSerializer(serializers.Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bin_seconds = serializers.IntegerField(help_text="The time each point covers")
    processes = ProcessMetricsSerializer(many=True)
    requests = RequestMetricsSerializer()


# --- one-off runs ------------------------------------------------------------------------------


class RunCreateSerializer(StrictSerializer):
    command = CommandAsSent(help_text='"rake db:migrate" or ["sh", "-c", "echo $BERTH_APP"]; Berth runs no shell.')
    size = StringAsSent(
        required=False, default=None, allow_null=True, help_text="A size's name (GET /api/v1/sizes/); the default one."
    )
    timeout = IntegerAsSent(
        required=False,
        default=None,
        allow_null=True,
        help_text="Seconds after which the run is killed (default 30 minutes).",
    )


class RunSerializer(serializers.ModelSerializer):
    release = serializers.IntegerField(source="release.version", read_only=True)
    size: "serializers.SlugRelatedField[Size]" = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(slug_field="email", read_only=True)
    process = serializers.CharField(read_only=True, help_text="Its name in the logs: app[run.12].")
    deployment: "serializers.PrimaryKeyRelatedField[Deployment]" = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "kind",
            "process",
            "state",
            "command",
            "release",
            "size",
            "timeout_s",
            "exit_code",
            "error",
            "deployment",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class RunDetailSerializer(RunSerializer):
    output = serializers.SerializerMethodField(
        help_text="Its last lines (?lines=, default 100, at most 1000), oldest first: what it printed and Berth's "
        "lines about it; null when the log store does not answer."
    )

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "output"]

    @extend_schema_field({"type": "array", "items": {"type": "object"}, "nullable": True})
    def get_output(self, run) -> list[dict] | None:
        lines = run_output(run, lines=self.context.get("lines", 100))
        return None if lines is None else [line.as_dict() for line in lines]
