from django.contrib.auth.models import Group
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, pagination, status, viewsets
from rest_framework.response import Response

from accounts.api.serializers import (
    ApiTokenSerializer,
    AuditEventSerializer,
    DepartmentSerializer,
    RoleSerializer,
    ShareSerializer,
    UserSerializer,
)
from accounts.audit import LIST, Actor, audit_record
from accounts.filters import AuditEventFilter
from accounts.models import ApiToken, AuditEvent, Department, User
from accounts.permissions import PermissionByAction, can, restrict
from accounts.roles import ROLES
from accounts.sharing import SHARE_PERM, share_grant, share_revoke, shareable_object
from accounts.tokens import MANAGE_PERM, token_create, token_revoke, tokens_visible_to


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
            User.objects.prefetch_related(
                "groups", "departments", "user_permissions__content_type"
            ).order_by("username"),
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


@extend_schema_view(
    list=extend_schema(summary="The roles and the permissions each gives"),
    retrieve=extend_schema(summary="One role"),
)
class RoleViewSet(PermissionByAction, viewsets.ReadOnlyModelViewSet):
    """Read-only: roles are defined in code (accounts/roles.py) and synchronised to groups;
    give them to users through ``/api/v1/users/`` (``roles``)."""

    default_perm = "accounts.view_user"
    serializer_class = RoleSerializer
    ordering_fields = ["name"]

    def get_queryset(self):
        return (
            Group.objects.filter(name__in=ROLES)
            .prefetch_related("permissions__content_type")
            .order_by("name")
        )


@extend_schema_view(
    list=extend_schema(summary="API tokens: your own; every user's for administrators"),
    retrieve=extend_schema(summary="One API token (never its key)"),
    create=extend_schema(
        summary="Make an API token; the answer carries the key, shown only this once",
        description=(
            "Made from a signed-in session (the profile page) or by an administrator: a token "
            "cannot make further tokens for its own user. Administrators give `user` to make "
            "a token for another user, e.g. a service account."
        ),
    ),
    destroy=extend_schema(summary="Revoke an API token"),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ApiTokenSerializer
    filterset_fields = ["user"]
    ordering_fields = ["created_at", "last_used_at", "name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator, no user
            return ApiToken.objects.none()
        return tokens_visible_to(self.request.user)

    def perform_create(self, serializer):
        request = self.request
        user = serializer.validated_data.get("user") or request.user
        manager = can(request.user, MANAGE_PERM)
        if user != request.user and not manager:
            raise exceptions.PermissionDenied(_("Only administrators make tokens for others."))
        if isinstance(request.auth, ApiToken) and not manager:
            # A leaked token must not be able to mint tokens that outlive its revocation.
            raise exceptions.PermissionDenied(
                _("Make new tokens from the profile page, signed in with your password.")
            )
        token, key = token_create(
            actor=Actor.from_request(request),
            user=user,
            name=serializer.validated_data["name"],
            expires_at=serializer.validated_data.get("expires_at"),
        )
        serializer.instance = token
        serializer.context["key"] = key

    def perform_destroy(self, instance):
        token_revoke(actor=Actor.from_request(self.request), token=instance)
