from django import forms
from django.utils.translation import gettext_lazy as _

from studies.models import Study
from studies.services import STUDY_EDITABLE_FIELDS


class StudyEditForm(forms.ModelForm):
    class Meta:
        model = Study
        fields = list(STUDY_EDITABLE_FIELDS)
        widgets = {"clinical_question": forms.Textarea(attrs={"rows": 3})}


class FrameParamsForm(forms.Form):
    """``window=c,w`` and ``max_size`` of a rendered frame."""

    window = forms.CharField(required=False)
    max_size = forms.IntegerField(required=False, min_value=16, max_value=8192)

    def clean_window(self):
        value = self.cleaned_data["window"].strip()
        if not value:
            return None
        try:
            center, width = (float(part) for part in value.split(","))
        except ValueError:
            raise forms.ValidationError(
                _("Give the window as centre,width, for example 40,400.")
            ) from None
        if width <= 0:
            raise forms.ValidationError(_("The window width must be positive."))
        return (center, width)
