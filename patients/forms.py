from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from patients.filters import DATE_INPUT_FORMATS
from patients.models import PATIENT_EDITABLE_FIELDS, IdentifierType, Patient


class PatientForm(forms.ModelForm):
    birth_date = forms.DateField(
        label=_("Birth date"),
        required=False,
        input_formats=DATE_INPUT_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    confirm_duplicate = forms.BooleanField(
        label=_("Register anyway: this is a different person"), required=False
    )

    class Meta:
        model = Patient
        fields = [*PATIENT_EDITABLE_FIELDS]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"mrn": _("Leave empty to generate one.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mrn"].required = False
        if self.instance.pk:
            self.fields.pop("confirm_duplicate")


class IdentifierForm(forms.Form):
    type = forms.ModelChoiceField(
        label=_("Identifier type"), queryset=IdentifierType.objects.filter(is_active=True)
    )
    value = forms.CharField(label=_("Value"), max_length=64)

    def clean(self):
        cleaned = super().clean()
        id_type, value = cleaned.get("type"), cleaned.get("value")
        if id_type and value:
            try:
                id_type.validate_value(value)
            except ValidationError as exc:
                self.add_error("value", exc)
        return cleaned


IdentifierFormSet = forms.formset_factory(IdentifierForm, extra=1, can_delete=True)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}), max_length=1000
    )
