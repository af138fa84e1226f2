"""The deployments REST API. Views are thin: parse with a serializer, call one service
or selector, answer. Errors are raised as ``PaasError`` and turned into
``{detail, code, fields?}`` by ``paas_project.api_errors``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.api_docs import ERRORS
from deployments import selectors, services
from deployments.errors import NotReady, Released
from deployments.lifetimes import deployment_extend
from deployments.models import Deployment
from deployments.serializers import (
    DeploymentCreateSerializer,
    DeploymentDetailSerializer,
    DeploymentSerializer,
    DeploymentUpdateSerializer,
    FileSerializer,
    HealthSerializer,
    LogsQuerySerializer,
    LogsSerializer,
    PoolSerializer,
    RestartResultSerializer,
    RuntimeSerializer,
    UploadResultSerializer,
    UploadSerializer,
)
from pools.health import platform_health

# On one of my deployments: it may be someone else's (404) or released (410).
MINE = {404: ERRORS[404], 410: ERRORS[410]}
ENGINE = {502: ERRORS[502], 503: ERRORS[503]}


class RuntimesView(APIView):
    @extend_schema(responses={200: RuntimeSerializer(many=True)},
                   summary="Runtimes and their availability")
    def get(self, request: Request) -> Response:
        return Response(RuntimeSerializer(selectors.runtimes_available(), many=True).data)


class DeploymentView(APIView):
    """Base of the views on the requesting user's deployments."""

    @property
    def user(self) -> AbstractBaseUser:
        user = self.request.user
        assert isinstance(user, AbstractBaseUser)  # IsAuthenticated let it in
        return user

    def mine(self, pk: int, *, active: bool = False) -> Deployment:
        """One of the user's deployments (404 otherwise); ``active``: 410 if released."""
        deployment = selectors.deployment_get_for_user(user=self.user,
                                                       deployment_id=pk)
        if active and deployment.is_pending:
            raise NotReady()
        if active and not deployment.is_active:
            raise Released()
        return deployment

    def show(self, deployment: Deployment, serializer: type[DeploymentSerializer] =
             DeploymentSerializer, code: int = status.HTTP_200_OK) -> Response:
        return Response(serializer(deployment, context={"request": self.request}).data,
                        status=code)


class DeploymentListView(DeploymentView):
    @extend_schema(responses={200: DeploymentSerializer(many=True)},
                   summary="My deployments (released ones included)")
    def get(self, request: Request) -> Response:
        deployments = selectors.deployments_for_user(user=self.user)
        return Response(DeploymentSerializer(deployments, many=True,
                                             context={"request": request}).data)

    @extend_schema(
        request=DeploymentCreateSerializer,
        responses={201: DeploymentSerializer, 202: DeploymentSerializer, 400: ERRORS[400],
                   403: ERRORS[403], 429: ERRORS[429], 503: ERRORS[503]},
        summary="Launch: get an idle container of a runtime at once",
        description="201 with a running deployment when a container is idle; 202 with a "
                    "pending one when none is idle but one is being prepared (poll it "
                    "until its status is running; launches are served first come, first "
                    "served); 503 pool_exhausted with Retry-After when none is coming.",
    )
    def post(self, request: Request) -> Response:
        serializer = DeploymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.deployment_create(
            user=self.user, runtime_name=serializer.validated_data["runtime"],
        )
        code = status.HTTP_202_ACCEPTED if deployment.is_pending else status.HTTP_201_CREATED
        return self.show(deployment, code=code)


class DeploymentDetailView(DeploymentView):
    @extend_schema(responses={200: DeploymentDetailSerializer, 404: ERRORS[404]},
                   summary="One of my deployments")
    def get(self, request: Request, pk: int) -> Response:
        deployment = self.mine(pk)
        if deployment.is_pending:  # its poll is a good moment to hand out idle slots
            services.deployments_serve_waiting(runtime_name=deployment.runtime_name)
            deployment.refresh_from_db()
        return self.show(deployment, DeploymentDetailSerializer)

    @extend_schema(request=DeploymentUpdateSerializer,
                   responses={200: DeploymentDetailSerializer, 400: ERRORS[400], **MINE},
                   summary="Name it: an alias hostname of your own, live in the background")
    def patch(self, request: Request, pk: int) -> Response:
        deployment = self.mine(pk, active=True)
        serializer = DeploymentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.deployment_alias_set(deployment=deployment,
                                      alias=serializer.validated_data["alias"])
        deployment.refresh_from_db()
        return self.show(deployment, DeploymentDetailSerializer)

    @extend_schema(responses={204: None, **MINE}, summary="Release: the container and "
                   "its files are destroyed (a pending launch is cancelled)")
    def delete(self, request: Request, pk: int) -> Response:
        deployment = self.mine(pk)
        if deployment.is_ended or not services.deployment_release(deployment=deployment):
            raise Released()  # already ended, or a concurrent release won
        return Response(status=status.HTTP_204_NO_CONTENT)


class FilesView(DeploymentView):
    parser_classes = [MultiPartParser]

    @extend_schema(responses={200: FileSerializer(many=True), **MINE},
                   summary="My deployment's files")
    def get(self, request: Request, pk: int) -> Response:
        files = services.deployment_files(deployment=self.mine(pk, active=True))
        return Response(FileSerializer(files, many=True).data)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: UploadResultSerializer, 400: ERRORS[400], 413: ERRORS[413],
                   **MINE, **ENGINE},
        summary="Upload files or archives (extracted); they are served / run at once",
    )
    def post(self, request: Request, pk: int) -> Response:
        deployment = self.mine(pk, active=True)
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        uploads = [(f.name or "", f) for f in serializer.validated_data["file"]]
        stored = services.deployment_upload(
            deployment=deployment, uploads=uploads, path=serializer.validated_data["path"],
        )
        return Response({"stored": stored}, status=status.HTTP_201_CREATED)


class FileDeleteView(DeploymentView):
    @extend_schema(responses={204: None, 400: ERRORS[400], **MINE, **ENGINE},
                   summary="Remove one file")
    def delete(self, request: Request, pk: int, path: str) -> Response:
        services.deployment_file_delete(deployment=self.mine(pk, active=True), path=path)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogsView(DeploymentView):
    throttle_classes = [ScopedRateThrottle]  # bounds each user's followers
    throttle_scope = "logs"

    @extend_schema(
        parameters=[LogsQuerySerializer],
        responses={200: LogsSerializer, 400: ERRORS[400], 429: ERRORS[429], **MINE,
                   **ENGINE},
        summary="The container's recent log lines; follow with since=<cursor>",
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = self.mine(pk, active=True)
        query = LogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        lines, cursor = services.deployment_log_follow(deployment=deployment,
                                                       **query.validated_data)
        return Response({"lines": lines, "cursor": cursor})


class RestartView(DeploymentView):
    @extend_schema(request=None, responses={202: RestartResultSerializer, **MINE, **ENGINE},
                   summary="Restart the app (python/node) or reload the web server")
    def post(self, request: Request, pk: int) -> Response:
        restarted = services.deployment_restart(deployment=self.mine(pk, active=True))
        return Response({"restarted": restarted}, status=status.HTTP_202_ACCEPTED)


class ExtendView(DeploymentView):
    @extend_schema(request=None, responses={200: DeploymentSerializer, 409: ERRORS[409],
                                            **MINE},
                   summary="Extend my deployment's lifetime, once, if the policy allows")
    def post(self, request: Request, pk: int) -> Response:
        return self.show(deployment_extend(deployment=self.mine(pk, active=True)))


class PoolsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: PoolSerializer(many=True), 403: ERRORS[403]},
                   summary="Staff: every pool, its counts and its slots")
    def get(self, request: Request) -> Response:
        return Response(PoolSerializer(selectors.pools_overview(), many=True).data)


class HealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer},
                   summary="Do the database and Docker answer?")
    def get(self, request: Request) -> Response:
        checks = platform_health()
        healthy = all(result == "ok" for result in checks.values())
        return Response(checks, status=200 if healthy else 503)

