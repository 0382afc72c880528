from django import forms
from django.utils.translation import gettext_lazy as _

from studies.models import FindingCode, ReportTemplate


class ReportDraftForm(forms.Form):
    conclusion = forms.CharField(
        label=_("Conclusion"),
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 12}),
    )
    finding_codes = forms.ModelMultipleChoiceField(
        label=_("Findings"),
        queryset=FindingCode.objects.filter(active=True),
        to_field_name="code",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, category: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        offered = [c.pk for c in FindingCode.offered_for(category)] if category else None
        if offered is not None:
            self.fields["finding_codes"].queryset = FindingCode.objects.filter(pk__in=offered)


class ReportStartForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=ReportTemplate.objects.none(), required=False
    )

    def __init__(self, *args, category: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = ReportTemplate.objects.filter(
            category=category, active=True
        )


class AmendForm(forms.Form):
    reason = forms.CharField(label=_("Reason for the amendment"), max_length=2000)
