"""Patients in the admin: every read is audited and every write goes through the services."""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.admin import ScopedAdminMixin
from accounts.audit import Actor, audit_list, audit_view
from patients import selectors, services
from patients.models import PATIENT_EDITABLE_FIELDS, IdentifierType, IdentityStatus, Patient


@admin.register(IdentifierType)
class IdentifierTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "validator", "is_active"]
    prepopulated_fields = {"code": ["name"]}


class PatientAdminForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = [*PATIENT_EDITABLE_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "mrn" in self.fields:
            self.fields["mrn"].required = False
            self.fields["mrn"].help_text = _("Leave empty to generate one.")

    def clean(self):
        cleaned = super().clean()
        # The same rule the service applies, checked here so that the admin shows a field error.
        if cleaned.get("identity_status") != IdentityStatus.UNKNOWN and not cleaned.get(
            "last_name"
        ):
            self.add_error(
                "last_name", _("A last name is required unless the identity is unknown.")
            )
        return cleaned


@admin.register(Patient)
class PatientAdmin(ScopedAdminMixin, admin.ModelAdmin):
    form = PatientAdminForm
    list_display = [
        "mrn",
        "last_name",
        "first_name",
        "middle_name",
        "birth_date",
        "sex",
        "identity_status",
        "department",
        "deleted_at",
    ]
    list_filter = ["identity_status", "sex", "department"]
    search_fields = ["=mrn", "search_name", "=identifiers__value"]
    readonly_fields = ["deleted_at", "deleted_by", "deletion_reason", "created_at", "updated_at"]
    actions = ["restore_selected"]

    def get_queryset(self, request):
        # Deleted patients only for those who may restore them, as on the pages and the API.
        return selectors.patient_queryset(user=request.user, include_deleted=True)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_deleted:
            return False  # read-only until restored; the service would refuse the change
        return super().has_change_permission(request, obj)

    def get_search_results(self, request, queryset, search_term):
        from patients.normalize import normalize_name

        return super().get_search_results(
            request,
            queryset,
            normalize_name(search_term) if not search_term.isdigit() else search_term,
        )

    def has_delete_permission(self, request, obj=None):
        return False  # soft delete only, through the patient page or the API

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            audit_list(
                actor=Actor.from_request(request),
                object_type="patients.patient",
                query=dict(request.GET.items()),
                patient_ids=[p.pk for p in changelist.result_list],
                admin=True,
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            audit_view(
                actor=Actor.from_request(request),
                object_type="patients.patient",
                object_id=object_id,
                patient_id=int(object_id) if str(object_id).isdigit() else None,
                details={"admin": True},
            )
        return response

    def save_model(self, request, obj, form, change):
        actor = Actor.from_request(request)
        data = {f: form.cleaned_data[f] for f in form.changed_data if f in PATIENT_EDITABLE_FIELDS}
        # The form has already checked fields and constraints; the service audits the write.
        if change:
            current = Patient.objects.get(pk=obj.pk)
            saved = services.patient_update(actor=actor, patient=current, data=data)
        else:
            saved = services.patient_register(
                actor=actor,
                data={
                    f: form.cleaned_data.get(f)
                    for f in PATIENT_EDITABLE_FIELDS
                    if f in form.cleaned_data
                },
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description=_("Restore selected deleted patients"), permissions=["restore"])
    def restore_selected(self, request, queryset):
        actor = Actor.from_request(request)
        restored = 0
        for patient in queryset.filter(deleted_at__isnull=False):
            services.patient_restore(actor=actor, patient=patient, reason="admin")
            restored += 1
        self.message_user(
            request,
            ngettext("%(n)d patient restored.", "%(n)d patients restored.", restored)
            % {"n": restored},
            messages.SUCCESS,
        )

    def has_restore_permission(self, request):
        return request.user.has_perm("patients.restore_patient")
