from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.views import (
    ApiTokenViewSet,
    AuditEventViewSet,
    DepartmentViewSet,
    RoleViewSet,
    ShareViewSet,
    UserViewSet,
)

router = DefaultRouter()
router.register("users", UserViewSet, basename="user")
router.register("departments", DepartmentViewSet, basename="department")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("roles", RoleViewSet, basename="role")
router.register("tokens", ApiTokenViewSet, basename="apitoken")

urlpatterns = [
    *router.urls,
    path("shares/", ShareViewSet.as_view({"post": "create"}), name="share-create"),
    path("shares/revoke/", ShareViewSet.as_view({"post": "revoke"}), name="share-revoke"),
]
