"""API input and output for deployments."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, cast

from rest_framework import serializers

from deployments.lifetimes import LifetimePolicies, deployment_expires_at
from deployments.models import Deployment
from deployments.selectors import (
    deployment_last_recovery,
    deployment_url,
    runtime_names_enabled,
)
from pools.logs import CURSOR

STATES = ["pending", "running", "recovering", "failed", "released"]
MAX_TAIL = 5000


class RuntimeSerializer(serializers.Serializer):
    name = serializers.CharField()
    idle = serializers.IntegerField()
    assigned = serializers.IntegerField()
    total = serializers.IntegerField()


class RuntimeNameField(serializers.ChoiceField):
    """Documented as an enum of the enabled runtimes; any non-blank name is passed on,
    so the service answers an unknown or disabled one in its words (and counts it)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not data.strip() or len(data) > 32:
            self.fail("invalid_choice", input=data)
        return str(data)


class DeploymentCreateSerializer(serializers.Serializer):
    runtime = RuntimeNameField(
        choices=[], help_text="One of the enabled runtimes (GET /api/runtimes/).",
        error_messages={"invalid_choice": "unknown runtime '{input}'"},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("data") is not None:
            return  # validating a launch: the choices are not used (a query saved)
        # Runtimes are rows: the choices (the schema's enum) are read when used.
        field = self.fields["runtime"]
        assert isinstance(field, serializers.ChoiceField)
        field.choices = runtime_names_enabled()


class DeploymentUpdateSerializer(serializers.Serializer):
    alias = serializers.CharField(
        max_length=253, allow_blank=True,
        help_text="A name of your own: https://<alias>.<apps domain>/ (a DNS label: "
                  "lowercase letters, digits, hyphens; \"\" removes it).")


class RecoverySerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField()
    reason = serializers.CharField()


# Builds its fields once per class and gives each serializer copies of them. DRF builds
# a serializer's fields anew for every instance (deep copies of the declared ones, the
# model's from its metadata): half of a launch answer's 1 ms. An answer's fields differ
# only in what binding sets on them (name, parent, source), so a shallow copy of an
# unbound field built once serves. For output serializers whose fields depend on neither
# the instance nor the context. (A comment, not a docstring: that would be in the schema.)
class FieldsBuiltOnce(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        built = cls.__dict__.get("_fields_built")  # this class's own, not a parent's
        if built is None:
            built = super().get_fields()
            cls._fields_built = built  # type: ignore[attr-defined]
        return {name: copy.copy(field) for name, field in built.items()}


class DeploymentSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    runtime = serializers.CharField(source="runtime_name")
    status = serializers.ChoiceField(choices=STATES, source="state")
    url = serializers.SerializerMethodField(help_text="The port URL (http://host:port/).")
    hostname = serializers.CharField(
        source="addresses.hostname", allow_null=True,
        help_text="<slug>.<apps domain>: the deployment's own hostname for its whole life "
                  "(null without the HTTPS front door).")
    https_url = serializers.CharField(source="addresses.https_url", allow_null=True)
    https_live = serializers.BooleanField(
        source="addresses.https_live",
        help_text="False while the HTTPS address is pending (the proxy has not got the "
                  "route yet); the port URL works meanwhile.")
    alias = serializers.CharField(source="addresses.alias",
                                  help_text="The name the user chose (\"\" for none).")
    alias_url = serializers.CharField(source="addresses.alias_url", allow_null=True)
    alias_live = serializers.BooleanField(source="addresses.alias_live")
    suspended = serializers.BooleanField(
        source="addresses.suspended",
        help_text="An operator suspended the hostnames: they show a notice page.")
    expires_at = serializers.SerializerMethodField(
        help_text="When the deployment will be released for its lifetime (maximum age "
                  "or idle timeout); null: never (lifetimes off) or released.")

    class Meta:
        model = Deployment
        fields = ["id", "runtime", "status", "port", "url", "hostname", "https_url",
                  "https_live", "alias", "alias_url", "alias_live", "suspended",
                  "created_at", "released_at", "expires_at", "ended_reason"]
        read_only_fields = fields

    def get_url(self, deployment: Deployment) -> str:
        return deployment_url(deployment=deployment,
                              request_host=self.context["request"].get_host())

    def get_expires_at(self, deployment: Deployment) -> datetime | None:
        # One set of policies for the whole answer (a list reads each runtime once).
        context = cast("dict[str, Any]", self.context)  # the root serializer's dict
        policies = context.setdefault(
            "lifetime_policies", LifetimePolicies(user=context["request"].user))
        return deployment_expires_at(deployment=deployment, policies=policies)


class DeploymentDetailSerializer(DeploymentSerializer):
    last_recovery = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "last_recovery"]
        read_only_fields = fields

    def get_last_recovery(self, deployment: Deployment) -> dict[str, Any] | None:
        recovery = deployment_last_recovery(deployment=deployment)
        return None if recovery is None else dict(RecoverySerializer(recovery).data)


class FileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()


class UploadSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        allow_empty=False,
        help_text="One or more files (repeat the field); .zip, .tar and .tar.gz archives "
                  "are extracted.",
    )
    path = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000,
                                 help_text="Folder to put the files in (default: the root).")


class UploadResultSerializer(serializers.Serializer):
    stored = serializers.ListField(child=serializers.CharField())


class LogsQuerySerializer(serializers.Serializer):
    tail = serializers.IntegerField(min_value=1, max_value=MAX_TAIL, default=100)
    since = serializers.RegexField(
        CURSOR, required=False, default="",
        help_text="The cursor of the last answer: only lines after it (follow the log).",
        error_messages={"invalid": "not a cursor from an earlier answer"})


class LogsSerializer(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField(allow_blank=True))
    cursor = serializers.CharField(allow_blank=True, help_text="Pass as since= next time.")


class RestartResultSerializer(serializers.Serializer):
    restarted = serializers.BooleanField(help_text="False while the container is being "
                                                   "replaced (it starts fresh anyway).")


class SlotSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    port = serializers.IntegerField()
    status = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    health = serializers.ChoiceField(choices=["healthy", "unhealthy", "unknown"])
    health_checked_at = serializers.DateTimeField(allow_null=True)


class PoolSerializer(serializers.Serializer):
    runtime = serializers.CharField()
    idle = serializers.IntegerField()
    assigned = serializers.IntegerField()
    failed = serializers.IntegerField()
    busy = serializers.IntegerField()
    total = serializers.IntegerField()
    pool_size = serializers.IntegerField()
    enabled = serializers.BooleanField()
    ports = serializers.CharField()
    slots = SlotSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    database = serializers.CharField()
    docker = serializers.CharField()
