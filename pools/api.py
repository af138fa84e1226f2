"""Staff API of the pools app: the audit trail."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_docs import ERRORS
from pools.audit import audit_entries
from pools.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor_name", "source", "action", "slots", "users", "result",
                  "detail"]


class AuditQuerySerializer(serializers.Serializer):
    action = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=150,
                                  help_text="exact actor name, e.g. charlie or system:watch")
    origin = serializers.ChoiceField(required=False, choices=AuditEntry.Source.choices,
                                     help_text="the entry's source: admin, command, api, system")
    slot = serializers.CharField(required=False, max_length=64, help_text="runtime:port")
    user = serializers.CharField(required=False, max_length=150)
    since = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


class AuditView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[AuditQuerySerializer],
                   responses={200: AuditEntrySerializer(many=True), 400: ERRORS[400],
                              403: ERRORS[403]},
                   summary="Staff: the audit trail, newest first")
    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(AuditEntrySerializer(audit_entries(**query.validated_data),
                                             many=True).data)

