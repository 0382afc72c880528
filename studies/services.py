"""Writes on studies besides ingest (which lives in :mod:`studies.ingest`)."""

from __future__ import annotations

from django.db import transaction

from accounts.audit import UPDATE, Actor, audit_record
from studies.models import Study

STUDY_EDITABLE_FIELDS = ("category", "body_part", "view_position", "clinical_question", "urgency")


@transaction.atomic
def study_update(*, actor: Actor, study: Study, data: dict) -> Study:
    """Change a study's editable fields; the audit row names each change (old → new)."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    changes = {}
    for name in STUDY_EDITABLE_FIELDS:
        if name in data and getattr(locked, name) != data[name]:
            changes[name] = [getattr(locked, name), data[name]]
            setattr(locked, name, data[name])
    if changes:
        locked.full_clean(exclude=["patient", "department", "study_uid"])
        locked.save(update_fields=list(changes))
        audit_record(actor=actor, action=UPDATE, obj=locked, details={"changes": changes})
    for name in STUDY_EDITABLE_FIELDS:
        setattr(study, name, getattr(locked, name))
    return study
