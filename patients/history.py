"""Identity history: one row per changed identity field, written by the services that change it."""

import datetime as dt

from accounts.audit import Actor
from patients.models import NAME_FIELDS, Patient, PatientHistory
from patients.normalize import normalize_name


def history_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a department by its name


def full_search_name(values: dict) -> str:
    return normalize_name(" ".join(str(values.get(f) or "") for f in NAME_FIELDS))


def history_record(
    *,
    actor: Actor,
    patient: Patient,
    event: str,
    changes: list[tuple[str, object, object]],
    reason: str = "",
    merge=None,
    former_name: str = "",
) -> list[PatientHistory]:
    """Record ``changes`` (``(field, before, after)`` triples) of ``patient``.

    ``former_name`` is the patient's normalised full name before the change; it is stored on
    the name rows so that search still finds the patient by it. A former MRN or identifier is
    stored on its own row the same way.
    """
    rows = []
    for field, before, after in changes:
        former = ""
        if field in NAME_FIELDS:
            former = former_name
        elif field == "former_name":
            former = normalize_name(history_value(before))
        elif field == "mrn" and before:
            former = history_value(before)
        elif field == "identifier" and before:
            former = history_value(before).split(":", 1)[-1]
        rows.append(
            PatientHistory(
                patient=patient,
                user=actor.user if actor.user_id else None,
                username=actor.username,
                event=event,
                field=field,
                before=history_value(before),
                after=history_value(after),
                former_key=former,
                reason=reason,
                merge=merge,
            )
        )
    return PatientHistory.objects.bulk_create(rows)
