from django import forms
from django.utils.translation import gettext_lazy as _


class FeedbackForm(forms.Form):
    verdict = forms.ChoiceField(
        label=_("Your verdict"), choices=[("agree", _("Agree")), ("disagree", _("Disagree"))]
    )
    comment = forms.CharField(label=_("Comment"), required=False, max_length=2000)
