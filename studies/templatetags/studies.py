from django import template

from accounts.permissions import can
from studies import selectors
from studies.ingest import ADD_PERM

register = template.Library()


@register.inclusion_tag("studies/_patient_studies.html", takes_context=True)
def patient_studies(context, patient):
    """The patient's studies with thumbnails, for the patient page (within the viewer's scope)."""
    user = context["request"].user
    can_view = can(user, selectors.VIEW)
    return {
        "patient": patient,
        "can_view_studies": can_view,
        "can_upload": can(user, ADD_PERM),
        "studies": selectors.patient_studies(user=user, patient_id=patient.pk) if can_view else [],
    }
