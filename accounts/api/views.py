from django.db import transaction
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, pagination, status, viewsets
from rest_framework.response import Response

from accounts.api.serializers import (
    AuditEventSerializer,
    DepartmentSerializer,
    ShareSerializer,
    UserSerializer,
)
from accounts.audit import LIST, Actor, audit_record
from accounts.filters import AuditEventFilter
from accounts.models import AuditEvent, Department, User
from accounts.permissions import PermissionByAction, restrict
from accounts.sharing import SHARE_PERM, share_grant, share_revoke, shareable_object


@extend_schema_view(
    list=extend_schema(summary="List users"),
    retrieve=extend_schema(summary="One user"),
    create=extend_schema(summary="Create a user (roles and departments included)"),
    partial_update=extend_schema(summary="Change a user, their roles or departments"),
    update=extend_schema(summary="Replace a user's fields"),
)
class UserViewSet(
    PermissionByAction,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Administrators manage users; role and department changes are audited by signals."""

    serializer_class = UserSerializer
    ordering_fields = ["username", "last_name", "date_joined", "last_login"]
    default_perm = "accounts.view_user"
    action_perms = {
        "create": "accounts.add_user",
        "update": "accounts.change_user",
        "partial_update": "accounts.change_user",
    }

    def get_queryset(self):
        return restrict(
            User.objects.prefetch_related("groups", "departments").order_by("username"),
            self.request.user,
            self.required_perm(),
        )

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.save()


@extend_schema_view(
    list=extend_schema(summary="List departments"),
    retrieve=extend_schema(summary="One department"),
    create=extend_schema(summary="Create a department"),
    partial_update=extend_schema(summary="Change a department"),
    update=extend_schema(summary="Replace a department's fields"),
)
class DepartmentViewSet(
    PermissionByAction,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = DepartmentSerializer
    ordering_fields = ["name", "code"]
    default_perm = "accounts.view_department"
    action_perms = {
        "create": "accounts.add_department",
        "update": "accounts.change_department",
        "partial_update": "accounts.change_department",
    }

    def get_queryset(self):
        return restrict(
            Department.objects.order_by("name"), self.request.user, self.required_perm()
        )


class AuditCursorPagination(pagination.CursorPagination):
    """Newest first and stable while rows are added (no page numbers over a growing table)."""

    ordering = ("-time", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


@extend_schema_view(
    list=extend_schema(summary="Search the audit (cursor-paginated, newest first)"),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(PermissionByAction, viewsets.ReadOnlyModelViewSet):
    """Read-only: there is no way to change or delete an audit event through the API."""

    serializer_class = AuditEventSerializer
    pagination_class = AuditCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter
    default_perm = "accounts.view_auditevent"

    def get_queryset(self):
        return restrict(AuditEvent.objects.all(), self.request.user, self.default_perm)

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_record(
            actor=Actor.from_request(request),
            action=LIST,
            object_type="accounts.auditevent",
            details={"query": dict(request.query_params.items()), "api": True},
        )
        return response


class ShareViewSet(PermissionByAction, viewsets.GenericViewSet):
    """Share one record with one user (a consultant), or take the share back."""

    serializer_class = ShareSerializer
    default_perm = SHARE_PERM
    filter_backends = []
    pagination_class = None

    def get_queryset(self):
        return User.objects.none()

    def _resolve(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        obj = shareable_object(object_type=data["object_type"], object_id=data["object_id"])
        return obj, data

    @extend_schema(
        summary="Share a record with a user",
        responses={201: ShareSerializer, 200: ShareSerializer},
    )
    def create(self, request):
        obj, data = self._resolve(request)
        created = share_grant(
            actor=Actor.from_request(request),
            obj=obj,
            user=data["user"],
            reason=data.get("reason", ""),
        )
        body = {
            "object_type": data["object_type"],
            "object_id": obj.pk,
            "user": data["user"].username,
            "reason": data.get("reason", ""),
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Take a share back",
        request=ShareSerializer,
        responses={204: OpenApiResponse(description="Revoked")},
    )
    def revoke(self, request):
        obj, data = self._resolve(request)
        revoked = share_revoke(
            actor=Actor.from_request(request),
            obj=obj,
            user=data["user"],
            reason=data.get("reason", ""),
        )
        if not revoked:
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)
