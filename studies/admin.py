"""Administrators manage the pathology list here; studies themselves are managed on their pages."""

from django.contrib import admin

from studies.models import FindingCode


@admin.register(FindingCode)
class FindingCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "name_ru", "categories", "active", "sort_order")
    list_filter = ("active",)
    list_editable = ("active", "sort_order")
    search_fields = ("code", "name_en", "name_ru")

    def has_delete_permission(self, request, obj=None):
        # Reports, annotations and AI findings name codes: retire a code, never delete it.
        return False
