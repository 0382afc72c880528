"""Merge and unmerge: one identity per person, without ever losing a linked row.

``patient_merge`` moves exactly the rows of the registered patient-linked models
(:mod:`patients.linked`) from the duplicate to the survivor, records their ids, applies the chosen
field values and points the duplicate at the survivor. ``patient_unmerge`` moves exactly those
rows back and restores the survivor's fields. Both lock the two patients in ascending id order,
so two people merging the same pair at once never deadlock: the second one waits, then finds the
pair already merged and gets a clear message. Each is one transaction: never half-merged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import Actor, audit_record
from patients.history import full_search_name, history_record, history_value
from patients.linked import linked_model, linked_models
from patients.models import (
    MERGE_FIELDS,
    NAME_FIELDS,
    DuplicateCandidate,
    IdentityStatus,
    Patient,
    PatientHistory,
    PatientMerge,
)
from patients.services import _jsonable, _require

MERGE = "merge"
UNMERGE = "unmerge"
SURVIVOR = "survivor"
DUPLICATE = "duplicate"
MERGE_PERM = "patients.merge_patient"
CHUNK = 500


@dataclass
class MergePreview:
    survivor: Patient
    duplicate: Patient
    # [(field, label, survivor value, duplicate value, default winner)] for every MERGE_FIELDS.
    fields: list[tuple] = field(default_factory=list)
    # [(verbose name, count)] of the duplicate's rows each registered model would move.
    moves: list[tuple[str, int]] = field(default_factory=list)

    @property
    def differing(self) -> list[tuple]:
        return [row for row in self.fields if row[2] != row[3]]

    @property
    def default_choices(self) -> dict[str, str]:
        return {row[0]: row[4] for row in self.fields}


def _default_winner(name: str, survivor_value, duplicate_value) -> str:
    """The survivor wins unless its value is empty (or, for the status, less certain)."""
    if name == "identity_status":
        order = [IdentityStatus.UNKNOWN, IdentityStatus.PROVISIONAL, IdentityStatus.VERIFIED]
        return DUPLICATE if order.index(duplicate_value) > order.index(survivor_value) else SURVIVOR
    if name == "sex":
        return DUPLICATE if survivor_value == "U" and duplicate_value != "U" else SURVIVOR
    empty = survivor_value in (None, "")
    return DUPLICATE if empty and duplicate_value not in (None, "") else SURVIVOR


def _check_pair(survivor: Patient, duplicate: Patient) -> None:
    if survivor.pk == duplicate.pk:
        raise ValidationError({"duplicate": _("A patient cannot be merged into itself.")})
    for patient in (survivor, duplicate):
        if patient.is_merged:
            raise ValidationError(
                {
                    "duplicate": _(
                        "%(name)s (MRN %(mrn)s) has already been merged into another record; "
                        "reload the page."
                    )
                    % {"name": patient.full_name, "mrn": patient.mrn}
                }
            )
        if patient.is_deleted:
            raise ValidationError(
                {
                    "duplicate": _("%(name)s (MRN %(mrn)s) is deleted; restore it first.")
                    % {"name": patient.full_name, "mrn": patient.mrn}
                }
            )


def merge_preview(*, survivor: Patient, duplicate: Patient) -> MergePreview:
    """What a merge of ``duplicate`` into ``survivor`` would move and which values would win."""
    _check_pair(survivor, duplicate)
    preview = MergePreview(survivor=survivor, duplicate=duplicate)
    for name in MERGE_FIELDS:
        label = str(Patient._meta.get_field(name).verbose_name)
        s_value, d_value = getattr(survivor, name), getattr(duplicate, name)
        preview.fields.append(
            (name, label, s_value, d_value, _default_winner(name, s_value, d_value))
        )
    for entry in linked_models():
        count = entry.model._base_manager.filter(**{entry.field: duplicate}).count()
        preview.moves.append((entry.verbose_name_plural, count))
    return preview


def _lock_pair(first_pk: int, second_pk: int) -> dict[int, Patient]:
    """Lock both rows in ascending id order (the same order for every caller)."""
    rows = (
        Patient.objects.select_for_update()
        .filter(pk__in=sorted({first_pk, second_pk}))
        .order_by("pk")
    )
    locked = {p.pk: p for p in rows}
    if len(locked) != len({first_pk, second_pk}):
        raise ValidationError(_("One of these patients no longer exists."))
    return locked


def _move(model, fk: str, ids: list[int], source: Patient, target: Patient) -> int:
    """Point exactly ``ids`` (those still on ``source``) at ``target``; returns how many moved."""
    moved = 0
    manager = model._base_manager
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        moved += manager.filter(pk__in=chunk, **{fk: source}).update(**{fk: target})
    return moved


@transaction.atomic
def patient_merge(
    *,
    actor: Actor,
    survivor: Patient,
    duplicate: Patient,
    reason: str,
    choices: dict[str, str] | None = None,
) -> PatientMerge:
    """Merge ``duplicate`` into ``survivor``.

    ``choices`` maps a field of ``MERGE_FIELDS`` to ``"survivor"`` or ``"duplicate"`` (the
    record whose value the survivor keeps); fields left out take the default (the survivor's
    value unless it is empty).
    """
    _require(actor, MERGE_PERM)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give a reason for this merge.")})
    choices = dict(choices or {})
    unknown = sorted(set(choices) - set(MERGE_FIELDS))
    bad = sorted(k for k, v in choices.items() if v not in (SURVIVOR, DUPLICATE))
    if unknown or bad:
        raise ValidationError(
            {
                "choices": _(
                    'Each choice must name a mergeable field and be "survivor" or "duplicate"; '
                    "wrong: %(fields)s."
                )
                % {"fields": ", ".join(unknown + bad)}
            }
        )
    locked = _lock_pair(survivor.pk, duplicate.pk)
    survivor, duplicate = locked[survivor.pk], locked[duplicate.pk]
    _check_pair(survivor, duplicate)

    winners = {}
    before, after = {}, {}
    changes = []
    former_name = survivor.search_name
    for name in MERGE_FIELDS:
        s_value, d_value = getattr(survivor, name), getattr(duplicate, name)
        winner = choices.get(name) or _default_winner(name, s_value, d_value)
        winners[name] = winner
        before[name] = _jsonable(s_value)
        if winner == DUPLICATE and s_value != d_value:
            setattr(survivor, name, d_value)
            changes.append((name, s_value, d_value))
        after[name] = _jsonable(getattr(survivor, name))
    if survivor.identity_status != IdentityStatus.UNKNOWN and not survivor.last_name:
        raise ValidationError(
            {"choices": _("The merged record needs a last name unless its identity is unknown.")}
        )

    moved = {}
    for entry in linked_models():
        ids = sorted(
            entry.model._base_manager.select_for_update()
            .filter(**{entry.field: duplicate})
            .values_list("pk", flat=True)
        )
        if ids:
            _move(entry.model, entry.field, ids, duplicate, survivor)
            moved[entry.label] = ids

    now = timezone.now()
    survivor.save()
    duplicate.merged_into = survivor
    duplicate.merged_at = now
    duplicate.save(update_fields=["merged_into", "merged_at", "updated_at"])
    try:
        with transaction.atomic():
            merge = PatientMerge.objects.create(
                survivor=survivor,
                duplicate=duplicate,
                merged_at=now,
                merged_by=actor.user if actor.user_id else None,
                merged_by_name=actor.username,
                reason=reason,
                choices=winners,
                survivor_before=before,
                survivor_after=after,
                moved=moved,
            )
    except IntegrityError:  # the constraint behind the locks: one active merge per duplicate
        raise ValidationError({"duplicate": _("This patient has already been merged.")}) from None

    identifier_rows = moved.get("patients.patientidentifier", [])
    moved_identifiers = [
        ("identifier", "", f"{i.type.code}:{i.value}")
        for i in survivor.identifiers.select_related("type").filter(pk__in=identifier_rows)
    ]
    # The duplicate's name stays searchable on the survivor, which is the record lists show.
    duplicate_name = full_search_name({f: getattr(duplicate, f) for f in NAME_FIELDS})
    history_record(
        actor=actor,
        patient=survivor,
        event=PatientHistory.Event.MERGE,
        changes=[
            ("merged_from", "", f"{duplicate.mrn} {duplicate.full_name}"),
            *changes,
            *moved_identifiers,
        ],
        reason=reason,
        merge=merge,
        former_name=former_name if former_name != survivor.search_name else "",
    )
    if duplicate_name and duplicate_name != survivor.search_name:
        history_record(
            actor=actor,
            patient=survivor,
            event=PatientHistory.Event.MERGE,
            changes=[("former_name", duplicate.full_name, "")],
            reason=reason,
            merge=merge,
        )
    history_record(
        actor=actor,
        patient=duplicate,
        event=PatientHistory.Event.MERGE,
        changes=[("merged_into", "", f"{survivor.mrn} {survivor.full_name}")],
        reason=reason,
        merge=merge,
    )
    _close_candidates(actor, survivor, duplicate, now)
    details = {
        "merge_id": merge.pk,
        "survivor_id": survivor.pk,
        "duplicate_id": duplicate.pk,
        "choices": winners,
        "changes": {name: [history_value(b), history_value(a)] for name, b, a in changes},
        "moved": moved,
    }
    audit_record(actor=actor, action=MERGE, obj=survivor, reason=reason, details=details)
    audit_record(actor=actor, action=MERGE, obj=duplicate, reason=reason, details=details)
    return merge


def _close_candidates(actor: Actor, survivor: Patient, duplicate: Patient, now) -> None:
    a, b = sorted((survivor.pk, duplicate.pk))
    DuplicateCandidate.objects.filter(
        patient_a_id=a, patient_b_id=b, status=DuplicateCandidate.Status.OPEN
    ).update(
        status=DuplicateCandidate.Status.MERGED,
        decided_at=now,
        decided_by=actor.user if actor.user_id else None,
    )
    # Other open pairs of the duplicate are stale: the refresh finds them again on the survivor.
    DuplicateCandidate.objects.filter(status=DuplicateCandidate.Status.OPEN).filter(
        patient_a=duplicate
    ).delete()
    DuplicateCandidate.objects.filter(status=DuplicateCandidate.Status.OPEN).filter(
        patient_b=duplicate
    ).delete()


def _field_value(name: str, stored):
    """A value as the merge record stored it, back in the form the model field takes."""
    if name == "department":
        return stored  # an id, assigned to department_id
    if name == "birth_date" and stored:
        return dt.date.fromisoformat(stored)
    return stored


@transaction.atomic
def patient_unmerge(*, actor: Actor, merge: PatientMerge, reason: str) -> PatientMerge:
    """Undo ``merge``: move exactly its rows back and restore the survivor's fields.

    Rows deleted or moved on since, and fields edited since the merge, are left as they are and
    listed in ``unmerge_report`` (and the audit), never overwritten silently.
    """
    _require(actor, MERGE_PERM)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give a reason for undoing this merge.")})
    locked = _lock_pair(merge.survivor_id, merge.duplicate_id)
    survivor, duplicate = locked[merge.survivor_id], locked[merge.duplicate_id]
    merge = PatientMerge.objects.select_for_update().get(pk=merge.pk)
    if not merge.is_active:
        raise ValidationError(_("This merge has already been undone."))
    if survivor.is_merged:
        raise ValidationError(
            _("%(name)s has since been merged into MRN %(mrn)s; undo that merge first.")
            % {"name": survivor.full_name, "mrn": survivor.merged_into.mrn}
        )

    identifier_ids = merge.moved.get("patients.patientidentifier", [])
    identifiers_back = [
        ("identifier", f"{i.type.code}:{i.value}", "")
        for i in survivor.identifiers.select_related("type").filter(pk__in=identifier_ids)
    ]
    report = {"rows_not_moved_back": {}, "fields_kept": []}
    for label, ids in merge.moved.items():
        model = apps.get_model(label)
        entry = linked_model(label)
        fk = entry.field if entry else "patient"
        back = _move(model, fk, ids, survivor, duplicate)
        if back != len(ids):
            still_there = set(
                model._base_manager.filter(pk__in=ids, **{fk: duplicate}).values_list(
                    "pk", flat=True
                )
            )
            report["rows_not_moved_back"][label] = sorted(set(ids) - still_there)

    restored = []
    for name, winner in merge.choices.items():
        if winner != DUPLICATE or merge.survivor_before.get(name) == merge.survivor_after.get(name):
            continue
        current = _jsonable(getattr(survivor, name))
        if current != merge.survivor_after.get(name):
            report["fields_kept"].append(name)  # edited since the merge: keep the newer value
            continue
        old = merge.survivor_before.get(name)
        attr = "department_id" if name == "department" else name
        setattr(survivor, attr, _field_value(name, old))
        restored.append((name, current, old))
    former_name = survivor.search_name
    survivor.save()
    duplicate.merged_into = None
    duplicate.merged_at = None
    duplicate.save(update_fields=["merged_into", "merged_at", "updated_at"])

    now = timezone.now()
    merge.unmerged_at = now
    merge.unmerged_by = actor.user if actor.user_id else None
    merge.unmerged_by_name = actor.username
    merge.unmerge_reason = reason
    merge.unmerge_report = {k: v for k, v in report.items() if v}
    merge.save()

    for patient, other, label in (
        (survivor, duplicate, "unmerged_from"),
        (duplicate, survivor, "unmerged_from"),
    ):
        history_record(
            actor=actor,
            patient=patient,
            event=PatientHistory.Event.UNMERGE,
            changes=[(label, "", f"{other.mrn} {other.full_name}")]
            + (restored + identifiers_back if patient is survivor else []),
            reason=reason,
            merge=merge,
            former_name=former_name
            if patient is survivor and former_name != survivor.search_name
            else "",
        )
    details = {
        "merge_id": merge.pk,
        "survivor_id": survivor.pk,
        "duplicate_id": duplicate.pk,
        "moved_back": merge.moved,
        "report": merge.unmerge_report,
    }
    audit_record(actor=actor, action=UNMERGE, obj=survivor, reason=reason, details=details)
    audit_record(actor=actor, action=UNMERGE, obj=duplicate, reason=reason, details=details)
    return merge
