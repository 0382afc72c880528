from django import template

from accounts.audit import audit_flush
from accounts.models import AuditEvent

register = template.Library()

ACCESS_LOG_SIZE = 50


@register.inclusion_tag("accounts/_access_log.html")
def access_log(record):
    """ "Who accessed this record": the latest audit events naming the record's patient.

    Shown on pages the viewer is already allowed to see. A record that stands for several
    patient ids (a merge) lists them in ``audit_patient_ids``; otherwise its own id is used.
    """
    audit_flush()  # this request's own view is listed too
    patient_ids = getattr(record, "audit_patient_ids", None) or [record.audit_patient_id]
    events = AuditEvent.objects.filter(patient_id__in=patient_ids).only(
        "time", "username", "action", "outcome", "flagged", "reason"
    )[:ACCESS_LOG_SIZE]
    return {"events": events, "limit": ACCESS_LOG_SIZE}
