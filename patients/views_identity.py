"""Identity pages: merge (with preview and per-field choice), unmerge, reconciliation of
unidentified patients, and the possible-duplicates queue."""

import copy

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.audit import Actor, audit_list
from accounts.permissions import can
from patients import duplicates, merge, selectors, services
from patients.forms import IdentifierFormSet, PatientForm, ReasonForm
from patients.models import IdentityStatus
from patients.normalize import normalize_mrn
from patients.views import _apply_errors, _identifier_inputs

MERGE_PERM = merge.MERGE_PERM
PAGE_SIZE = 25


def _require(request, perm: str) -> None:
    if not can(request.user, perm):
        raise PermissionDenied


class MergeForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=1000
    )

    def __init__(self, *args, preview: merge.MergePreview, **kwargs):
        super().__init__(*args, **kwargs)
        self.choice_fields = []
        for name, label, s_value, d_value, default in preview.differing:
            self.fields[f"choice_{name}"] = forms.ChoiceField(
                label=label,
                choices=[
                    (merge.SURVIVOR, _display(s_value)),
                    (merge.DUPLICATE, _display(d_value)),
                ],
                initial=default,
                widget=forms.RadioSelect,
            )
            self.choice_fields.append(self[f"choice_{name}"])

    def choices(self) -> dict[str, str]:
        return {
            key.removeprefix("choice_"): value
            for key, value in self.cleaned_data.items()
            if key.startswith("choice_")
        }


def _display(value) -> str:
    if value in (None, ""):
        return "—"
    return str(value)


def _find_duplicate(request, survivor):
    """The patient to merge in: ``?duplicate=<id>`` or ``?mrn=<MRN>``, within the user's scope.
    A record merged meanwhile is still found, so that the page can say so."""
    qs = selectors.patient_queryset(user=request.user, perm=MERGE_PERM, include_merged=True)
    if request.GET.get("mrn"):
        return qs.filter(mrn=normalize_mrn(request.GET["mrn"])).first()
    if request.GET.get("duplicate"):
        try:
            return qs.filter(pk=int(request.GET["duplicate"])).first()
        except ValueError:
            return None
    return None


@login_required
@require_http_methods(["GET", "POST"])
def patient_merge(request, pk: int):
    _require(request, MERGE_PERM)
    survivor = selectors.patient_get(user=request.user, pk=pk, perm=MERGE_PERM)
    duplicate = _find_duplicate(request, survivor)
    context = {"patient": survivor, "duplicate": duplicate, "mrn": request.GET.get("mrn", "")}
    if (request.GET.get("mrn") or request.GET.get("duplicate")) and duplicate is None:
        context["lookup_error"] = _("No such patient that you may merge: %(mrn)s.") % {
            "mrn": request.GET.get("mrn") or request.GET.get("duplicate")
        }
    if duplicate is None:
        return render(request, "patients/patient_merge.html", context)
    try:
        preview = merge.merge_preview(survivor=survivor, duplicate=duplicate)
    except ValidationError as exc:
        context["lookup_error"] = " ".join(exc.messages)
        context["duplicate"] = None
        return render(request, "patients/patient_merge.html", context)
    form = MergeForm(request.POST or None, preview=preview)
    if request.method == "POST" and form.is_valid():
        try:
            done = merge.patient_merge(
                actor=Actor.from_request(request),
                survivor=survivor,
                duplicate=duplicate,
                reason=form.cleaned_data["reason"],
                choices=form.choices(),
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request,
                _("%(duplicate)s (MRN %(mrn)s) merged into this record; %(count)s rows moved.")
                % {
                    "duplicate": duplicate.full_name,
                    "mrn": duplicate.mrn,
                    "count": done.moved_count,
                },
            )
            return redirect(survivor)
    context.update(preview=preview, form=form)
    return render(request, "patients/patient_merge.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def patient_unmerge(request, pk: int, merge_pk: int):
    _require(request, MERGE_PERM)
    survivor = selectors.patient_get(user=request.user, pk=pk, perm=MERGE_PERM)
    record = selectors.merge_get(user=request.user, patient=survivor, pk=merge_pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            record = merge.patient_unmerge(
                actor=Actor.from_request(request), merge=record, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request,
                _("Merge undone: %(name)s (MRN %(mrn)s) is a separate record again.")
                % {"name": record.duplicate.full_name, "mrn": record.duplicate.mrn},
            )
            if record.unmerge_report:
                messages.warning(
                    request,
                    _(
                        "Some things were left as they are because they changed after the "
                        "merge: %(report)s"
                    )
                    % {"report": record.unmerge_report},
                )
            return redirect(survivor)
    return render(
        request,
        "patients/patient_unmerge.html",
        {"patient": survivor, "merge": record, "form": form},
    )


# --- reconciliation ---------------------------------------------------------------------------
@login_required
def reconciliation(request):
    _require(request, "patients.change_patient")
    page = Paginator(selectors.reconciliation_list(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    audit_list(
        actor=Actor.from_request(request),
        object_type="patients.patient",
        query={"reconciliation": True},
        patient_ids=[p.pk for p in page.object_list],
        page=page.number,
    )
    return render(
        request,
        "patients/reconciliation.html",
        {"page": page, "can_merge": can(request.user, MERGE_PERM)},
    )


@login_required
def patient_merge_into(request, pk: int):
    """From the reconciliation list: merge this unidentified patient into a verified record
    found by MRN (the verified one survives)."""
    _require(request, MERGE_PERM)
    patient = selectors.patient_get(user=request.user, pk=pk, perm=MERGE_PERM)
    mrn = normalize_mrn(request.GET.get("mrn", ""))
    target = (
        selectors.patient_queryset(user=request.user, perm=MERGE_PERM)
        .filter(mrn=mrn, identity_status=IdentityStatus.VERIFIED)
        .exclude(pk=patient.pk)
        .first()
        if mrn
        else None
    )
    if target is None:
        messages.error(
            request,
            _("No verified patient with MRN %(mrn)s that you may merge into.")
            % {"mrn": mrn or "—"},
        )
        return redirect("patients:reconciliation")
    url = reverse("patients:merge", args=[target.pk])
    return redirect(f"{url}?{urlencode({'duplicate': patient.pk})}")


@login_required
@require_http_methods(["GET", "POST"])
def patient_identify(request, pk: int):
    _require(request, "patients.change_patient")
    patient = selectors.patient_get(user=request.user, pk=pk, perm="patients.change_patient")
    if patient.identity_status == IdentityStatus.VERIFIED:
        messages.info(request, _("This patient is already identified."))
        return redirect(patient)
    initial_identifiers = [{"type": i.type, "value": i.value} for i in patient.identifiers.all()]
    form = PatientForm(request.POST or None, instance=copy.copy(patient))
    form.fields.pop("identity_status")
    for name in services.IDENTIFY_REQUIRED:
        form.fields[name].required = True
    formset = IdentifierFormSet(request.POST or None, prefix="ident", initial=initial_identifiers)
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            services.patient_identify(
                actor=Actor.from_request(request),
                patient=patient,
                data={f: form.cleaned_data[f] for f in form.fields if f in form.cleaned_data},
                identifiers=_identifier_inputs(formset),
            )
        except ValidationError as exc:
            _apply_errors(form, exc, formset)
        else:
            messages.success(request, _("Patient identified: the record is now verified."))
            return redirect(patient)
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "formset": formset, "duplicates": [], "patient": patient, "identify": True},
    )


# --- possible duplicates ----------------------------------------------------------------------
@login_required
def duplicate_list(request):
    _require(request, MERGE_PERM)
    page = Paginator(selectors.duplicate_queue(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    ids = []
    for pair in page.object_list:
        ids += [pair.patient_a_id, pair.patient_b_id]
    audit_list(
        actor=Actor.from_request(request),
        object_type="patients.duplicatecandidate",
        query={},
        patient_ids=ids,
        page=page.number,
    )
    return render(request, "patients/duplicate_list.html", {"page": page})


@login_required
@require_POST
def duplicate_dismiss(request, pk: int):
    _require(request, MERGE_PERM)
    pair = selectors.duplicate_get(user=request.user, pk=pk)
    try:
        duplicates.duplicate_dismiss(
            actor=Actor.from_request(request), candidate=pair, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Dismissed: this pair will not be suggested again."))
    return redirect("patients:duplicates")
