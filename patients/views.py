import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.audit import Actor, audit_list, audit_view
from accounts.permissions import can
from patients import selectors, services
from patients.forms import IdentifierFormSet, PatientForm, ReasonForm

PAGE_SIZE = 25


def _require(request, perm: str) -> None:
    if not can(request.user, perm):
        raise PermissionDenied


def _apply_errors(form, exc: ValidationError, formset=None) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            if field == "identifiers" and formset is not None:
                formset._non_form_errors = formset.error_class(errors)
            elif field in form.fields:
                form.add_error(field, errors)
            else:
                form.add_error(None, errors)
    else:
        form.add_error(None, exc.messages)


def _identifier_inputs(formset) -> list[services.IdentifierInput]:
    return [
        services.IdentifierInput(type=f.cleaned_data["type"], value=f.cleaned_data["value"])
        for f in formset.forms
        if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("value")
    ]


@login_required
def patient_list(request):
    _require(request, "patients.view_patient")
    filterset = selectors.patient_filter(user=request.user, data=request.GET)
    results = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    audit_list(
        actor=Actor.from_request(request),
        object_type="patients.patient",
        query={k: v for k, v in request.GET.items() if k != "page"},
        patient_ids=[p.pk for p in page.object_list],
        page=page.number,
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "patients/patient_list.html",
        {
            "filter": filterset,
            "page": page,
            "query": query.urlencode(),
            "can_add": can(request.user, "patients.add_patient"),
            "can_reconcile": can(request.user, "patients.change_patient"),
            "can_merge": can(request.user, "patients.merge_patient"),
            "can_restore": can(request.user, "patients.restore_patient"),
            "include_deleted": selectors.wants_deleted(request.GET)
            and can(request.user, "patients.restore_patient"),
        },
    )


@login_required
def patient_detail(request, pk: int):
    try:
        patient = selectors.patient_get(user=request.user, pk=pk, include_deleted=True)
    except Http404:
        # A merged record's old URL leads to the survivor (when the user may see it).
        survivor = selectors.patient_merged_survivor(user=request.user, pk=pk)
        if survivor is None:
            raise
        messages.info(request, _("That record was merged into this one."))
        return redirect(survivor)
    audit_view(actor=Actor.from_request(request), obj=patient)
    can_merge = can(request.user, "patients.merge_patient") and not patient.is_deleted
    return render(
        request,
        "patients/patient_detail.html",
        {
            "patient": patient,
            "identifiers": patient.identifiers.all(),
            "can_change": can(request.user, "patients.change_patient") and not patient.is_deleted,
            "can_delete": can(request.user, "patients.delete_patient") and not patient.is_deleted,
            "can_restore": can(request.user, "patients.restore_patient") and patient.is_deleted,
            "can_merge": can_merge,
            "can_identify": can(request.user, "patients.change_patient")
            and not patient.is_deleted
            and patient.identity_status != "verified",
            "history": selectors.patient_history(patient=patient)[:200],
            "merges": selectors.patient_merges(patient=patient),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_create(request):
    _require(request, "patients.add_patient")
    form = PatientForm(request.POST or None)
    formset = IdentifierFormSet(request.POST or None, prefix="ident")
    duplicates = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        data = form.cleaned_data
        duplicates = list(
            selectors.patient_possible_duplicates(
                user=request.user,
                last_name=data.get("last_name", ""),
                first_name=data.get("first_name", ""),
                birth_date=data.get("birth_date"),
            )
        )
        if duplicates and not data.get("confirm_duplicate"):
            audit_list(  # the warning shows these patients: a read like a list page
                actor=Actor.from_request(request),
                object_type="patients.patient",
                query={"possible_duplicates_of": data.get("last_name", "")},
                patient_ids=[p.pk for p in duplicates],
            )
            form.add_error(
                None,
                _(
                    "A patient with the same name and birth date is already registered. "
                    "Open that record, or tick the box below to register a different person."
                ),
            )
        else:
            try:
                patient = services.patient_register(
                    actor=Actor.from_request(request),
                    data=data,
                    identifiers=_identifier_inputs(formset),
                )
            except ValidationError as exc:
                _apply_errors(form, exc, formset)
            else:
                messages.success(
                    request, _("Patient %(name)s registered.") % {"name": patient.full_name}
                )
                return redirect(patient)
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "formset": formset, "duplicates": duplicates, "patient": None},
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_edit(request, pk: int):
    _require(request, "patients.change_patient")
    patient = selectors.patient_get(user=request.user, pk=pk, perm="patients.change_patient")
    if request.method == "GET":
        audit_view(actor=Actor.from_request(request), obj=patient)  # the form shows every field
    initial_identifiers = [{"type": i.type, "value": i.value} for i in patient.identifiers.all()]
    # The form validates on a copy: the page heading keeps the stored name if the input is bad,
    # and the service compares against the row it locks, not against the form's instance.
    form = PatientForm(request.POST or None, instance=copy.copy(patient))
    formset = IdentifierFormSet(request.POST or None, prefix="ident", initial=initial_identifiers)
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            services.patient_update(
                actor=Actor.from_request(request),
                patient=patient,
                data={f: form.cleaned_data[f] for f in form.Meta.fields},
                identifiers=_identifier_inputs(formset),
            )
        except ValidationError as exc:
            _apply_errors(form, exc, formset)
        else:
            messages.success(request, _("Changes saved."))
            return redirect(patient)
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "formset": formset, "duplicates": [], "patient": patient},
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_delete(request, pk: int):
    _require(request, "patients.delete_patient")
    patient = selectors.patient_get(user=request.user, pk=pk, perm="patients.delete_patient")
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.patient_soft_delete(
                actor=Actor.from_request(request),
                patient=patient,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request,
                _("Patient %(name)s deleted. An administrator can restore the record.")
                % {"name": patient.full_name},
            )
            return redirect("patients:list")
    return render(
        request, "patients/patient_confirm_delete.html", {"patient": patient, "form": form}
    )


@login_required
@require_http_methods(["POST"])
def patient_restore(request, pk: int):
    _require(request, "patients.restore_patient")
    patient = selectors.patient_get(
        user=request.user, pk=pk, perm="patients.restore_patient", include_deleted=True
    )
    try:
        services.patient_restore(actor=Actor.from_request(request), patient=patient)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Patient %(name)s restored.") % {"name": patient.full_name})
    return redirect(patient)
