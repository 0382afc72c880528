"""The hospital settings page (administrators): the institution printed on reports."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.audit import UPDATE, Actor, audit_record
from accounts.models import HospitalSettings
from accounts.permissions import can

CHANGE_PERM = "accounts.change_hospitalsettings"
MAX_LOGO_BYTES = 2 * 1024 * 1024


class HospitalSettingsForm(forms.ModelForm):
    class Meta:
        model = HospitalSettings
        fields = ["name", "address", "logo", "time_zone", "default_language"]
        widgets = {"address": forms.Textarea(attrs={"rows": 3})}

    def clean_logo(self):
        logo = self.cleaned_data.get("logo")
        if logo and getattr(logo, "size", 0) > MAX_LOGO_BYTES:
            raise forms.ValidationError(_("The logo must be at most 2 MB."))
        return logo


@transaction.atomic
def hospital_settings_update(*, actor: Actor, form: HospitalSettingsForm) -> HospitalSettings:
    if not can(actor.user, CHANGE_PERM):
        raise PermissionDenied
    obj = form.save()
    audit_record(
        actor=actor,
        action=UPDATE,
        obj=obj,
        details={"changed": sorted(form.changed_data)},
    )
    return obj


@login_required
@require_http_methods(["GET", "POST"])
def hospital_settings(request):
    if not can(request.user, CHANGE_PERM):
        raise PermissionDenied
    current = HospitalSettings.load()
    form = HospitalSettingsForm(instance=current)
    if request.method == "POST":
        form = HospitalSettingsForm(request.POST, request.FILES, instance=current)
        if form.is_valid():
            hospital_settings_update(actor=Actor.from_request(request), form=form)
            messages.success(request, _("Hospital settings saved."))
            return redirect("accounts:hospital")
    return render(request, "accounts/hospital_settings.html", {"form": form})


@login_required
@require_GET
def hospital_logo(request):
    """The logo for the print view (no patient data: any signed-in user)."""
    current = HospitalSettings.load()
    if not current.logo:
        raise Http404
    try:
        return FileResponse(current.logo.open("rb"))
    except OSError:
        raise Http404 from None
