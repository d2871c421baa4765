"""An app's releases, config, formation, deployments and containers. Changes answer at once with the
Deployment the worker will carry out; no view talks to a Docker host."""

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from berth.applications.models import Formation, Release
from berth.core.errors import Invalid, NotFound
from berth.deployments import services
from berth.deployments.models import Canary, Deployment, DeploymentStep, Run
from berth.deployments.selectors import active_canary
from berth.fleet.models import Container
from berth.fleet.selectors import container_exits
from berth.tenancy.roles import Action

from .. import serializers
from .base import AppScopedViewSet


class ReleaseViewSet(mixins.ListModelMixin, AppScopedViewSet):
    """Immutable, numbered releases of an app. POST makes a new one and deploys it."""

    queryset = Release.objects.none()  # for the schema; get_queryset scopes real requests
    serializer_class = serializers.ReleaseSerializer
    lookup_field = "version"
    lookup_value_regex = r"[0-9]{1,9}"
    required_actions = {
        "list": Action.APP_VIEW,
        "retrieve": Action.APP_VIEW,
        "create": Action.APP_DEPLOY,
        "rollback": Action.APP_DEPLOY,
    }

    def get_queryset(self):
        return (
            Release.objects.for_actor(self.request.user, self.required_actions[self.action])
            .filter(app=self.app)
            .select_related("author")
        )

    def retrieve(self, request, org_slug=None, app_name=None, version=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request=serializers.ReleaseOrCanaryCreateSerializer, responses={201: serializers.ReleaseDeployedSerializer}
    )
    def create(self, request, org_slug=None, app_name=None):
        """Make a new release and deploy it; with `canary_weight`, deploy it as a canary beside the release
        that runs (docs/deploys.md#canary-releases)."""
        data = serializers.ReleaseOrCanaryCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        weight = data.validated_data.pop("canary_weight")
        if weight is not None:
            release, deployment, canary = services.canary_create(
                actor=request.user, app=self.app, weight=weight, **data.validated_data
            )
            return _deployed(release, deployment, canary)
        release, deployment = services.release_create(actor=request.user, app=self.app, **data.validated_data)
        return _deployed(release, deployment)

    @extend_schema(request=serializers.RollbackSerializer, responses={201: serializers.ReleaseDeployedSerializer})
    @action(detail=False, methods=["post"])
    def rollback(self, request, org_slug=None, app_name=None):
        """Make a new release from an earlier one (image, process types and config) and deploy it."""
        data = serializers.RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release, deployment = services.release_rollback(actor=request.user, app=self.app, **data.validated_data)
        return _deployed(release, deployment)


def _deployed(release, deployment, canary=None):
    body = {
        "release": serializers.ReleaseSerializer(release).data,
        "deployment": serializers.DeploymentSerializer(deployment).data,
    }
    if canary is not None:
        body["canary"] = serializers.CanarySerializer(canary).data
    return Response(body, status=status.HTTP_201_CREATED)


class CanaryViewSet(AppScopedViewSet):
    """The app's active canary: a release deployed beside the one that runs, taking a share of its HTTP
    requests (docs/deploys.md#canary-releases). `POST releases/` with `canary_weight` starts one; GET reads
    it, PATCH changes its weight, `promote/` makes it the app's release, `abort/` takes it away. Each
    change answers at once with the deployment the worker carries out."""

    queryset = Canary.objects.none()
    serializer_class = serializers.CanarySerializer
    pagination_class = None  # one document per app
    filter_backends = []
    required_actions = {
        "read": Action.APP_VIEW,
        "partial_update_all": Action.APP_DEPLOY,
        "promote": Action.APP_DEPLOY,
        "abort": Action.APP_DEPLOY,
    }

    @extend_schema(responses=serializers.CanarySerializer)
    def read(self, request, org_slug=None, app_name=None):
        """The active canary with its replicas; 404 when the app has none."""
        canary = active_canary(self.app)
        if canary is None:
            raise NotFound("The app has no canary.")
        canary.app = self.app
        return Response(serializers.CanarySerializer(canary).data)

    @extend_schema(request=serializers.CanaryWeightSerializer, responses={202: serializers.CanaryChangedSerializer})
    def partial_update_all(self, request, org_slug=None, app_name=None):
        """Give the canary another share of the requests (1 to 99 percent); its replicas follow."""
        data = serializers.CanaryWeightSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        canary, deployment = services.canary_weight_set(
            actor=request.user, app=self.app, weight=data.validated_data["weight"]
        )
        return _canary_changed(self.app, canary, deployment)

    @extend_schema(request=None, responses={202: serializers.CanaryChangedSerializer})
    def promote(self, request, org_slug=None, app_name=None):
        """The canary's release becomes the app's release: the canary's replicas join it and the old
        replicas are replaced start-first, draining before they stop."""
        canary, deployment = services.canary_promote(actor=request.user, app=self.app)
        return _canary_changed(self.app, canary, deployment)

    @extend_schema(request=None, responses={202: serializers.CanaryChangedSerializer})
    def abort(self, request, org_slug=None, app_name=None):
        """The canary's replicas leave the routes, drain and stop; the release that runs keeps running."""
        canary, deployment = services.canary_abort(actor=request.user, app=self.app)
        return _canary_changed(self.app, canary, deployment)


def _canary_changed(app, canary, deployment):
    canary.app = app
    body = {
        "canary": serializers.CanarySerializer(canary).data,
        "deployment": serializers.DeploymentSerializer(deployment).data if deployment else None,
    }
    return Response(body, status=status.HTTP_202_ACCEPTED if deployment else status.HTTP_200_OK)


class ConfigViewSet(AppScopedViewSet):
    """Config vars, encrypted at rest. Changing them makes a new release (once the app has one) from the
    target release: the one being deployed, or, when none is, the one that runs (docs/deploys.md)."""

    queryset = Release.objects.none()
    serializer_class = serializers.ConfigSerializer
    pagination_class = None  # one document, not a list
    filter_backends = []
    required_actions = {"read": Action.CONFIG_VIEW, "partial_update_all": Action.APP_DEPLOY}

    @extend_schema(responses=serializers.ConfigSerializer)
    def read(self, request, org_slug=None, app_name=None):
        """Every config var with its value. Reading values is recorded in the audit log by key, as a
        reveal in the dashboard is (`services.config_reveal`)."""
        return Response({"config": services.config_reveal(actor=request.user, app=self.app)})

    @extend_schema(request=serializers.ConfigUpdateSerializer, responses=serializers.ConfigUpdatedSerializer)
    def partial_update_all(self, request, org_slug=None, app_name=None):
        """Set or unset config vars. The new release has the image and process types of the target
        release: the release being deployed, or, when none is, the one that runs (after a release
        failed, the one that still runs, never the one that failed)."""
        data = serializers.ConfigUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release, deployment = services.config_set(
            actor=request.user, app=self.app, values=data.validated_data["config"]
        )
        body = {
            "config": {var.key: var.value for var in self.app.config_vars.all()},
            "release": serializers.ReleaseSerializer(release).data if release else None,
            "deployment": serializers.DeploymentSerializer(deployment).data if deployment else None,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED if deployment else status.HTTP_200_OK)


class FormationViewSet(AppScopedViewSet):
    """How many containers of each process type run, and at which size. PATCH scales the target release:
    the one being deployed, or, when none is, the one that runs (docs/deploys.md)."""

    queryset = Formation.objects.none()
    serializer_class = serializers.FormationSerializer
    pagination_class = None  # one short document per app
    filter_backends = []
    required_actions = {"list": Action.APP_VIEW, "partial_update_all": Action.APP_DEPLOY}

    @extend_schema(responses=serializers.FormationSerializer(many=True))
    def list(self, request, org_slug=None, app_name=None):
        return Response(self.get_serializer(self.app.formation.select_related("size"), many=True).data)

    @extend_schema(request=serializers.FormationUpdateSerializer, responses=serializers.FormationUpdatedSerializer)
    def partial_update_all(self, request, org_slug=None, app_name=None):
        """Change quantity and size per process type. It applies to the target release: the release being
        deployed (a scale right after a new release scales the new one), or, when none is, the one that
        runs. If the deployment fails, the formation it changed goes back, unless a later change set it."""
        data = serializers.FormationUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.formation_scale(
            actor=request.user, app=self.app, changes=data.validated_data["formation"]
        )
        body = {
            "formation": serializers.FormationSerializer(self.app.formation.select_related("size"), many=True).data,
            "deployment": serializers.DeploymentSerializer(deployment).data if deployment else None,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED if deployment else status.HTTP_200_OK)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AppScopedViewSet):
    """Deployments of an app, newest first, with the steps each took and why one failed."""

    queryset = Deployment.objects.none()
    serializer_class = serializers.DeploymentSerializer
    required_actions = {"list": Action.APP_VIEW, "retrieve": Action.APP_VIEW}

    def get_queryset(self):
        rows = Deployment.objects.for_actor(self.request.user, self.required_actions[self.action]).filter(app=self.app)
        rows = rows.select_related("release", "created_by")
        if self.action == "retrieve":
            steps = DeploymentStep.objects.select_related("host", "container")
            rows = rows.prefetch_related(Prefetch("steps", queryset=steps), "containers")
        return rows

    def get_serializer_class(self):
        return serializers.DeploymentDetailSerializer if self.action == "retrieve" else serializers.DeploymentSerializer


class ContainerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AppScopedViewSet):
    """The app's containers: running ones by default, `?all=true` for its history too."""

    queryset = Container.objects.none()
    serializer_class = serializers.ContainerSerializer
    required_actions = {
        "list": Action.APP_VIEW,
        "retrieve": Action.APP_VIEW,
        "exits": Action.APP_VIEW,
        "restart": Action.APP_DEPLOY,
    }

    def get_queryset(self):
        rows = Container.objects.for_actor(self.request.user, self.required_actions[self.action]).filter(app=self.app)
        if self.action == "list" and self.request.query_params.get("all") != "true":
            rows = rows.filter(state__in=Container.LIVE)
        return rows.select_related("host", "release", "size").order_by("process_type", "index", "-created_at")

    @extend_schema(responses=serializers.ContainerExitsSerializer)
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def exits(self, request, org_slug=None, app_name=None):
        """Crash history: containers that exited on their own or were lost with their host in the last
        24 hours, newest first, at most 50 per process type, each with the deployment that replaced it."""
        history = container_exits(actor=request.user, app=self.app, now=timezone.now())
        return Response(serializers.ContainerExitsSerializer(history).data)

    @extend_schema(request=serializers.RestartSerializer, responses={202: serializers.DeploymentSerializer})
    @action(detail=False, methods=["post"])
    def restart(self, request, org_slug=None, app_name=None):
        """Replace containers start-first: all, one process type, or one container."""
        data = serializers.RestartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        container = None
        if data.validated_data["container"]:
            container = (
                self.get_queryset().filter(pk=data.validated_data["container"], state__in=Container.LIVE).first()
            )
            if container is None:
                raise NotFound("The app has no running container with this id.", field="container")
        deployment = services.app_restart(
            actor=request.user, app=self.app, process_type=data.validated_data["process_type"], container=container
        )
        return Response(serializers.DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AppScopedViewSet):
    """One-off runs of the app's release, and the release commands its deployments ran (docs/runs.md).
    POST starts one; GET shows its state, exit code and last output lines."""

    queryset = Run.objects.none()
    serializer_class = serializers.RunSerializer
    lookup_value_regex = r"[0-9]{1,18}"
    required_actions = {"list": Action.APP_VIEW, "retrieve": Action.APP_VIEW, "create": Action.APP_DEPLOY}

    def get_queryset(self):
        rows = Run.objects.for_actor(self.request.user, self.required_actions[self.action]).filter(app=self.app)
        return rows.select_related("release", "size", "created_by")

    def get_serializer_class(self):
        return serializers.RunDetailSerializer if self.action == "retrieve" else serializers.RunSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("lines", int, description="How many of its last lines (default 100, at most 1000).")
        ]
    )
    def retrieve(self, request, org_slug=None, app_name=None, pk=None):
        raw = request.query_params.get("lines", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUN_LINES:
            raise Invalid(f"lines is a whole number from 1 to {MAX_RUN_LINES}.", field="lines")
        run = self.get_object()
        return Response(serializers.RunDetailSerializer(run, context={"lines": int(raw)}).data)

    @extend_schema(request=serializers.RunCreateSerializer, responses={202: serializers.RunSerializer})
    def create(self, request, org_slug=None, app_name=None):
        """Run a command once in a container of its own, from the release that runs (image and config),
        hardened and billed like any container, killed at its timeout. Answers at once; the worker starts it."""
        data = serializers.RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.run_create(actor=request.user, app=self.app, **data.validated_data)
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


MAX_RUN_LINES = 1000
