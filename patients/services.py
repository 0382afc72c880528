"""Writes to the patient registry. Each entry point is one transaction with its audit row."""

import datetime as dt
import secrets
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import CREATE, DELETE, RESTORE, UPDATE, Actor, audit_record
from accounts.permissions import can
from patients.history import history_record
from patients.models import (
    HISTORY_FIELDS,
    PATIENT_EDITABLE_FIELDS,
    IdentifierType,
    IdentityStatus,
    Patient,
    PatientHistory,
    PatientIdentifier,
)
from patients.normalize import normalize_identifier, normalize_mrn


@dataclass(frozen=True)
class IdentifierInput:
    type: IdentifierType
    value: str


def _require(actor: Actor, perm: str) -> None:
    if not can(actor.user, perm):
        raise PermissionDenied(_("You do not have permission to do this."))


def mrn_generate(*, temporary: bool = False) -> str:
    """A new MRN: ``T``-prefixed for a temporary one (an unidentified arrival)."""
    prefix = "T" if temporary else "P"
    today = timezone.localdate()
    for _attempt in range(20):
        candidate = f"{prefix}{today:%y%m%d}-{secrets.token_hex(3).upper()}"
        if not Patient.objects.filter(mrn=candidate).exists():
            return candidate
    raise RuntimeError("Could not generate a unique MRN")


def _jsonable(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "pk"):
        return value.pk
    return value


def _validate_identifiers(identifiers: list[IdentifierInput], *, patient: Patient | None) -> None:
    errors = []
    seen = set()
    for item in identifiers:
        try:
            item.type.validate_value(item.value)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        key = (item.type.pk, normalize_identifier(item.value))
        if key in seen:
            errors.append(_("%(type)s is given twice.") % {"type": item.type.name})
        seen.add(key)
        clash = PatientIdentifier.objects.filter(type=item.type, value=key[1])
        if patient is not None:
            clash = clash.exclude(patient=patient)
        if clash.exists():
            errors.append(
                _("%(type)s %(value)s already belongs to another patient (MRN %(mrn)s).")
                % {"type": item.type.name, "value": item.value, "mrn": clash[0].patient.mrn}
            )
    if errors:
        raise ValidationError({"identifiers": errors})


def _identifier_label(type_code: str, value: str) -> str:
    return f"{type_code}:{value}"


def _set_identifiers(patient: Patient, identifiers: list[IdentifierInput]) -> tuple[dict, list]:
    """Replace the identifiers, keeping the rows that stay (their ids matter to an unmerge).

    Returns the audit change and the history triples (one per identifier added or removed).
    """
    current = {(i.type_id, i.value): i for i in patient.identifiers.select_related("type")}
    wanted = {(i.type.pk, normalize_identifier(i.value)): i.type for i in identifiers}
    removed = [row for key, row in current.items() if key not in wanted]
    added = [(key, id_type) for key, id_type in wanted.items() if key not in current]
    try:
        with transaction.atomic():  # a savepoint: a lost race must not poison the transaction
            PatientIdentifier.objects.filter(pk__in=[row.pk for row in removed]).delete()
            PatientIdentifier.objects.bulk_create(
                PatientIdentifier(patient=patient, type=id_type, value=key[1])
                for key, id_type in added
            )
    except IntegrityError:
        raise ValidationError(
            {"identifiers": _("One of these identifiers was just given to another patient.")}
        ) from None
    history = [("identifier", _identifier_label(r.type.code, r.value), "") for r in removed]
    history += [("identifier", "", _identifier_label(t.code, key[1])) for key, t in added]
    if not history:
        return {}, []
    before = sorted(_identifier_label(r.type.code, r.value) for r in current.values())
    after = sorted(_identifier_label(t.code, key[1]) for key, t in wanted.items())
    return {"identifiers": [before, after]}, history


def _check_mrn_free(mrn: str, *, exclude_pk: int | None = None) -> None:
    qs = Patient.objects.filter(mrn=normalize_mrn(mrn))
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationError({"mrn": _("A patient with this MRN already exists.")})


@transaction.atomic
def patient_register(
    *, actor: Actor, data: dict, identifiers: list[IdentifierInput] = ()
) -> Patient:
    """Register a patient. A blank MRN is generated (temporary for an unknown identity)."""
    _require(actor, "patients.add_patient")
    fields = {k: v for k, v in data.items() if k in PATIENT_EDITABLE_FIELDS}
    status = fields.get("identity_status") or IdentityStatus.VERIFIED
    if not fields.get("mrn"):
        fields["mrn"] = mrn_generate(temporary=status == IdentityStatus.UNKNOWN)
    if status != IdentityStatus.UNKNOWN and not fields.get("last_name"):
        raise ValidationError(
            {"last_name": _("A last name is required unless the identity is unknown.")}
        )
    if not fields.get("department") and actor.user_id is not None:
        # Scope follows the department: a record registered without one would be visible to
        # nobody, its registrar included, so it goes to the registrar's (first) department.
        fields["department"] = actor.user.departments.order_by("pk").first()
    _check_mrn_free(fields["mrn"])
    _validate_identifiers(list(identifiers), patient=None)
    patient = Patient(**fields)
    patient.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise ValidationError({"mrn": _("A patient with this MRN already exists.")}) from None
    _changes, identifier_history = _set_identifiers(patient, list(identifiers))
    history_record(
        actor=actor,
        patient=patient,
        event=PatientHistory.Event.CREATE,
        changes=[("", "", patient.full_name), *identifier_history],
    )
    audit_record(
        actor=actor,
        action=CREATE,
        obj=patient,
        details={"fields": {k: _jsonable(getattr(patient, k)) for k in fields}},
    )
    return patient


@transaction.atomic
def patient_update(
    *,
    actor: Actor,
    patient: Patient,
    data: dict,
    identifiers: list[IdentifierInput] | None = None,
) -> Patient:
    """Change fields (and, when given, replace the identifiers); audits before → after and
    keeps every identity change in the patient's history."""
    _require(actor, "patients.change_patient")
    return _update(actor=actor, patient=patient, data=data, identifiers=identifiers)


def _lock_for_change(patient: Patient) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if patient.is_deleted:
        raise ValidationError(_("This patient is deleted; an administrator must restore it first."))
    if patient.is_merged:
        raise ValidationError(
            _("This record was merged into MRN %(mrn)s; change that record instead.")
            % {"mrn": patient.merged_into.mrn}
        )
    return patient


def _update(
    *,
    actor: Actor,
    patient: Patient,
    data: dict,
    identifiers: list[IdentifierInput] | None,
    event: str = PatientHistory.Event.UPDATE,
    reason: str = "",
) -> Patient:
    patient = _lock_for_change(patient)
    former_name = patient.search_name
    changes = {}
    for field, value in data.items():
        if field not in PATIENT_EDITABLE_FIELDS:
            continue
        if field == "mrn":
            value = normalize_mrn(value)
            if not value:
                raise ValidationError({"mrn": _("The MRN cannot be empty.")})
            _check_mrn_free(value, exclude_pk=patient.pk)
        old = getattr(patient, field)
        if old != value:
            changes[field] = [_jsonable(old), _jsonable(value)]
            setattr(patient, field, value)
    if patient.identity_status != IdentityStatus.UNKNOWN and not patient.last_name:
        raise ValidationError(
            {"last_name": _("A last name is required unless the identity is unknown.")}
        )
    patient.full_clean(validate_unique=False)
    if identifiers is not None:
        _validate_identifiers(list(identifiers), patient=patient)
    if changes:
        try:
            with transaction.atomic():
                patient.save()
        except IntegrityError:
            raise ValidationError({"mrn": _("A patient with this MRN already exists.")}) from None
    history = [(f, *changes[f]) for f in HISTORY_FIELDS if f in changes]
    if identifiers is not None:
        identifier_change, identifier_history = _set_identifiers(patient, list(identifiers))
        changes.update(identifier_change)
        history += identifier_history
    if history:
        history_record(
            actor=actor,
            patient=patient,
            event=event,
            changes=history,
            reason=reason,
            former_name=former_name if former_name != patient.search_name else "",
        )
    if changes or event != PatientHistory.Event.UPDATE:
        audit_record(
            actor=actor,
            action=UPDATE if event == PatientHistory.Event.UPDATE else event,
            obj=patient,
            reason=reason,
            details={"changes": changes},
        )
    return patient


IDENTIFY_REQUIRED = ("last_name", "first_name", "birth_date")


@transaction.atomic
def patient_identify(
    *,
    actor: Actor,
    patient: Patient,
    data: dict,
    identifiers: list[IdentifierInput] | None = None,
    reason: str = "",
) -> Patient:
    """Identify an ``unknown`` or ``provisional`` patient by filling in the rest: the record
    becomes ``verified``. (The other way to identify one is to merge it into a verified record.)"""
    _require(actor, "patients.change_patient")
    current = _lock_for_change(patient)
    if current.identity_status == IdentityStatus.VERIFIED:
        raise ValidationError(_("This patient is already identified."))
    merged = {f: getattr(current, f) for f in IDENTIFY_REQUIRED} | {
        k: v for k, v in data.items() if k in PATIENT_EDITABLE_FIELDS
    }
    missing = {
        f: _("Required to identify the patient.") for f in IDENTIFY_REQUIRED if not merged.get(f)
    }
    if missing:
        raise ValidationError(missing)
    data = {**data, "identity_status": IdentityStatus.VERIFIED}
    return _update(
        actor=actor,
        patient=current,
        data=data,
        identifiers=identifiers,
        event=PatientHistory.Event.IDENTIFY,
        reason=reason,
    )


@transaction.atomic
def patient_soft_delete(*, actor: Actor, patient: Patient, reason: str) -> Patient:
    """Hide a patient (kept, with everything linked to it) until an administrator restores it."""
    _require(actor, "patients.delete_patient")
    if not reason.strip():
        raise ValidationError({"reason": _("Give a reason for deleting this patient.")})
    updated = Patient.objects.filter(pk=patient.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), deleted_by=actor.user, deletion_reason=reason.strip()
    )
    if updated != 1:
        raise ValidationError(_("This patient is already deleted."))
    audit_record(actor=actor, action=DELETE, obj=patient, reason=reason.strip())
    patient.refresh_from_db()
    return patient


@transaction.atomic
def patient_restore(*, actor: Actor, patient: Patient, reason: str = "") -> Patient:
    _require(actor, "patients.restore_patient")
    updated = Patient.objects.filter(pk=patient.pk, deleted_at__isnull=False).update(
        deleted_at=None, deleted_by=None, deletion_reason=""
    )
    if updated != 1:
        raise ValidationError(_("This patient is not deleted."))
    audit_record(actor=actor, action=RESTORE, obj=patient, reason=reason.strip())
    patient.refresh_from_db()
    return patient
