"""Break-glass for patients: an exact MRN or identifier (never a name fragment) finds one
patient outside one's scope, shows minimal identity, and with a reason opens the record for
``EMERGENCY_ACCESS_HOURS``. Every lookup and grant is audited; grants are flagged for review."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.audit import EMERGENCY_LOOKUP, Actor, audit_record
from accounts.emergency import EMERGENCY_PERM, emergency_grant
from accounts.models import AuditEvent
from accounts.permissions import can
from patients.models import Patient, PatientIdentifier
from patients.normalize import normalize_identifier, normalize_mrn


class EmergencyLookupForm(forms.Form):
    number = forms.CharField(
        label=gettext_lazy("Exact MRN or identifier"),
        max_length=64,
        help_text=gettext_lazy("The whole number: names and fragments are not searched."),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        min_length=5,
        max_length=1000,
    )
    patient = forms.IntegerField(required=False, widget=forms.HiddenInput)


def emergency_lookup(number: str) -> Patient | None:
    """The one living patient whose MRN or identifier is exactly ``number``."""
    number = number.strip()
    by_mrn = Patient.objects.alive().filter(mrn=normalize_mrn(number)).first()
    if by_mrn is not None:
        return by_mrn
    ids = set(
        PatientIdentifier.objects.filter(value=normalize_identifier(number)).values_list(
            "patient_id", flat=True
        )
    )
    if len(ids) != 1:
        return None  # none, or the same number under several identifier types: not exact
    return Patient.objects.alive().filter(pk__in=ids).first()


@login_required
@require_http_methods(["GET", "POST"])
def emergency_access(request):
    if not can(request.user, EMERGENCY_PERM):
        raise PermissionDenied
    form = EmergencyLookupForm(request.POST or None)
    found = None
    if request.method == "POST" and form.is_valid():
        actor = Actor.from_request(request)
        number, reason = form.cleaned_data["number"], form.cleaned_data["reason"]
        found = emergency_lookup(number)
        if found is None:
            audit_record(
                actor=actor,
                action=EMERGENCY_LOOKUP,
                object_type="patients.patient",
                outcome=AuditEvent.Outcome.FAILED,
                reason=reason,
                details={"number": number},
            )
            form.add_error("number", _("No patient has exactly this MRN or identifier."))
        elif form.cleaned_data.get("patient") == found.pk and "open" in request.POST:
            try:
                emergency_grant(actor=actor, obj=found, reason=reason)
            except ValidationError as exc:
                form.add_error("reason", exc.messages)
            else:
                messages.warning(
                    request,
                    _(
                        "Emergency access granted. It is recorded and will be reviewed by an "
                        "administrator."
                    ),
                )
                return redirect(found)
        else:
            audit_record(
                actor=actor,
                action=EMERGENCY_LOOKUP,
                obj=found,
                reason=reason,
                flagged=True,
                details={"number": number},
            )
            form = EmergencyLookupForm(
                initial={"number": number, "reason": reason, "patient": found.pk}
            )
    return render(request, "patients/emergency_access.html", {"form": form, "found": found})
