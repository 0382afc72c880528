from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.audit import Actor
from accounts.emergency import REVIEW_PERM, emergency_review
from accounts.models import ApiToken, AuditEvent, Department, EmergencyAccess, User


class ScopedAdminMixin:
    """An object outside the user's scope (or missing) is a 404 in the admin, as on the pages
    and in the API, instead of the admin's redirect that tells the object exists or not."""

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "is_active"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ["name"]}


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = BaseUserAdmin.fieldsets + (
        (
            _("Hospital"),
            {
                "fields": (
                    "middle_name",
                    "departments",
                    "must_change_password",
                    "is_service_account",
                )
            },
        ),
    )
    filter_horizontal = ("groups", "user_permissions", "departments")
    list_display = [
        "username",
        "last_name",
        "first_name",
        "is_active",
        "is_staff",
        "must_change_password",
    ]
    list_filter = [
        "is_active",
        "is_staff",
        "is_service_account",
        "groups",
        "departments",
        "must_change_password",
    ]
    actions = ["require_password_change"]

    @admin.action(
        description=_("Require a password change at the next request"),
        permissions=["change"],
    )
    def require_password_change(self, request, queryset):
        # One save per user: the change is audited by the User signals.
        count = 0
        for user in queryset.filter(must_change_password=False):
            user.must_change_password = True
            user.save(update_fields=["must_change_password"])
            count += 1
        self.message_user(
            request,
            ngettext(
                "%(n)d user must change the password.",
                "%(n)d users must change their passwords.",
                count,
            )
            % {"n": count},
            messages.SUCCESS,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Read-only: the audit can be looked at and filtered, never changed. The full search with
    CSV export is the audit page (accounts:audit)."""

    list_display = [
        "time",
        "username",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "outcome",
        "flagged",
        "ip",
    ]
    list_filter = ["action", "outcome", "flagged", "object_type"]
    search_fields = ["username", "object_id", "=patient_id"]
    date_hierarchy = "time"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EmergencyAccess)
class EmergencyAccessAdmin(admin.ModelAdmin):
    """The review list of break-glass accesses: read-only, with a 'reviewed' action."""

    list_display = [
        "created_at",
        "user",
        "object_type",
        "object_id",
        "patient_id",
        "reason",
        "expires_at",
        "reviewed_at",
        "reviewed_by",
    ]
    list_filter = [("reviewed_at", admin.EmptyFieldListFilter), "object_type"]
    search_fields = ["user__username", "=patient_id", "reason"]
    date_hierarchy = "created_at"
    actions = ["mark_reviewed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(REVIEW_PERM)

    def has_module_permission(self, request):
        return request.user.has_perm(REVIEW_PERM) or super().has_module_permission(request)

    @admin.action(description=_("Mark as reviewed"), permissions=["review"])
    def mark_reviewed(self, request, queryset):
        actor = Actor.from_request(request)
        count = 0
        for grant in queryset.filter(reviewed_at__isnull=True).select_related("user"):
            emergency_review(actor=actor, grant=grant)
            count += 1
        self.message_user(
            request,
            ngettext("%(n)d access reviewed.", "%(n)d accesses reviewed.", count) % {"n": count},
            messages.SUCCESS,
        )

    def has_review_permission(self, request):
        return request.user.has_perm(REVIEW_PERM)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here (audited); they are made on the profile page, with
    POST /api/v1/tokens/ or ``manage.py create_api_token``, where the key can be shown once."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at"]
    list_filter = ["user__is_service_account"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "created_at",
        "created_by_name",
        "last_used_at",
        "expires_at",
    ]
    exclude = ["key_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("accounts.change_user")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("accounts.change_user")

    def delete_model(self, request, obj):
        from accounts.tokens import token_revoke

        token_revoke(actor=Actor.from_request(request), token=obj)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            self.delete_model(request, token)
