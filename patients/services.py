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
from patients.models import (
    PATIENT_EDITABLE_FIELDS,
    IdentifierType,
    IdentityStatus,
    Patient,
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


def _set_identifiers(patient: Patient, identifiers: list[IdentifierInput]) -> dict:
    before = sorted(f"{i.type.code}:{i.value}" for i in patient.identifiers.select_related("type"))
    try:
        with transaction.atomic():  # a savepoint: a lost race must not poison the transaction
            patient.identifiers.all().delete()
            PatientIdentifier.objects.bulk_create(
                PatientIdentifier(patient=patient, type=i.type, value=normalize_identifier(i.value))
                for i in identifiers
            )
    except IntegrityError:
        raise ValidationError(
            {"identifiers": _("One of these identifiers was just given to another patient.")}
        ) from None
    after = sorted(f"{i.type.code}:{normalize_identifier(i.value)}" for i in identifiers)
    return {} if before == after else {"identifiers": [before, after]}


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
    _set_identifiers(patient, list(identifiers))
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
    """Change fields (and, when given, replace the identifiers); audits before → after."""
    _require(actor, "patients.change_patient")
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if patient.is_deleted:
        raise ValidationError(_("This patient is deleted; an administrator must restore it first."))
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
    if identifiers is not None:
        changes.update(_set_identifiers(patient, list(identifiers)))
    if changes:
        audit_record(actor=actor, action=UPDATE, obj=patient, details={"changes": changes})
    return patient


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
