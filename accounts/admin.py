from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent, Department, User


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "is_active"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ["name"]}


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = BaseUserAdmin.fieldsets + (
        (_("Hospital"), {"fields": ("middle_name", "departments")}),
    )
    filter_horizontal = ("groups", "user_permissions", "departments")
    list_display = ["username", "last_name", "first_name", "is_active", "is_staff"]
    list_filter = ["is_active", "is_staff", "groups", "departments"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit can be looked at and filtered, never changed."""

    list_display = [
        "time",
        "username",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "outcome",
        "ip",
    ]
    list_filter = ["action", "outcome", "object_type"]
    search_fields = ["username", "object_id", "=patient_id"]
    date_hierarchy = "time"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
