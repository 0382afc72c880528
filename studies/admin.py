"""Administrators manage the pathology list here; studies themselves are managed on their pages."""

from django.contrib import admin

from accounts.admin import ScopedAdminMixin
from accounts.audit import Actor, audit_view
from accounts.permissions import restrict
from studies.models import FindingCode, Report, ReportTemplate


@admin.register(FindingCode)
class FindingCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "name_ru", "categories", "active", "sort_order")
    list_filter = ("active",)
    list_editable = ("active", "sort_order")
    search_fields = ("code", "name_en", "name_ru")

    def has_delete_permission(self, request, obj=None):
        # Reports, annotations and AI findings name codes: retire a code, never delete it.
        return False


# --- Reading and reporting -------------------------------------------------------------------


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "active")
    list_filter = ("category", "active")
    search_fields = ("name", "conclusion")

    def has_delete_permission(self, request, obj=None):
        return False  # retire a template with "active"


@admin.register(Report)
class ReportAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Read-only: drafts are written and signed on the report pages; signed versions never
    change. Rows are limited to the administrator's departments, and opening one is audited."""

    list_display = ("study", "version", "status", "preliminary", "author", "signed_at")
    list_filter = ("status", "preliminary")
    readonly_fields = [f.name for f in Report._meta.fields] + ["finding_codes"]
    fields = readonly_fields

    def get_queryset(self, request):
        return restrict(
            super().get_queryset(request).select_related("study", "author"),
            request.user,
            "studies.view_report",
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None:
            audit_view(actor=Actor.from_request(request), obj=obj, details={"admin": True})
        return super().change_view(request, object_id, form_url, extra_context)
