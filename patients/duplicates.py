"""The possible-duplicates queue: finding candidate pairs, and dismissing them for good.

Pairs are found within blocks (same birth date, or day and month swapped; a shared identifier
or MRN value; the same transliterated last name when a birth date is missing), so the refresh
never compares every patient with every other. Names are scored by trigram similarity the way
pg_trgm computes it, over both the written names and their Latin keys (ё = е, GOST and ICAO
spellings folded together), so the scores are the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from itertools import combinations

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import Actor, audit_record
from patients.identity import latin_key, name_similarity
from patients.models import DuplicateCandidate, Patient, PatientIdentifier
from patients.normalize import normalize_identifier
from patients.services import _require

THRESHOLD = 0.6
NAME_WEIGHT = 0.6
SAME_BIRTH_DATE = 0.3
SWAPPED_BIRTH_DATE = 0.2
MISSING_BIRTH_DATE = 0.1
SHARED_IDENTIFIER = 0.6  # alone enough to be worth a look
MAX_BLOCK = 500  # a block bigger than this (a default birth date?) is skipped, not squared

NAME = "name"
BIRTH_DATE = "birth_date"
BIRTH_DATE_SWAPPED = "birth_date_swapped"
IDENTIFIER = "identifier"


def _swapped(date: dt.date | None) -> dt.date | None:
    if date is None or date.day > 12 or date.day == date.month:
        return None
    try:
        return date.replace(month=date.day, day=date.month)
    except ValueError:
        return None


def score_pair(a: dict, b: dict, *, shared_identifier: bool = False) -> tuple[float, float, list]:
    """(score, name similarity, reasons) of two patients given as dicts of their fields."""
    name = name_similarity(a["name"], b["name"])
    reasons = []
    score = NAME_WEIGHT * name
    if name >= 0.5:
        reasons.append(NAME)
    if a["birth_date"] and b["birth_date"]:
        if a["birth_date"] == b["birth_date"]:
            score += SAME_BIRTH_DATE
            reasons.append(BIRTH_DATE)
        elif _swapped(a["birth_date"]) == b["birth_date"]:
            score += SWAPPED_BIRTH_DATE
            reasons.append(BIRTH_DATE_SWAPPED)
        elif not shared_identifier:
            return 0.0, name, []  # two different known birth dates: different people
    else:
        score += MISSING_BIRTH_DATE
    if shared_identifier:
        score += SHARED_IDENTIFIER
        reasons.append(IDENTIFIER)
    if NAME not in reasons and IDENTIFIER not in reasons:
        return 0.0, name, []
    return min(round(score, 4), 1.0), name, reasons


def _patients() -> dict[int, dict]:
    rows = (
        Patient.objects.alive()
        .unmerged()
        .values("id", "mrn", "last_name", "first_name", "middle_name", "birth_date")
    )
    return {
        r["id"]: {
            "name": " ".join(p for p in (r["last_name"], r["first_name"], r["middle_name"]) if p),
            "last_key": latin_key(r["last_name"]),
            "birth_date": r["birth_date"],
            "mrn": normalize_identifier(r["mrn"]),
        }
        for r in rows
    }


TRIGRAM_PAIRS = """
    SELECT a.id, b.id FROM patients_patient a
    JOIN patients_patient b ON a.id < b.id AND a.search_name % b.search_name
    WHERE (a.birth_date IS NULL OR b.birth_date IS NULL)
      AND a.deleted_at IS NULL AND b.deleted_at IS NULL
      AND a.merged_into_id IS NULL AND b.merged_into_id IS NULL
      AND a.search_name <> '' AND b.search_name <> ''
"""


def trigram_pairs() -> set[tuple[int, int]]:
    """PostgreSQL only: pairs with similar written names (pg_trgm's ``%``, served by the trigram
    index on ``search_name``) where a birth date is missing, to catch a misspelt last name that
    the transliteration key does not. SQLite relies on the key blocks alone."""
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pg_trgm.similarity_threshold', '0.5', true)")
        cursor.execute(TRIGRAM_PAIRS)
        return {(a, b) for a, b in cursor.fetchall()}


def find_candidate_pairs(patients: dict[int, dict]) -> dict[tuple[int, int], tuple]:
    """{(smaller id, larger id): (score, name similarity, reasons)} of the pairs worth a look."""
    blocks: dict[tuple, set[int]] = defaultdict(set)
    undated_by_key: dict[str, set[int]] = defaultdict(set)
    dated_by_key: dict[str, set[int]] = defaultdict(set)
    for pk, p in patients.items():
        if p["birth_date"]:
            blocks[("dob", p["birth_date"])].add(pk)
            swapped = _swapped(p["birth_date"])
            if swapped:
                blocks[("dob", swapped)].add(pk)
        if p["last_key"]:
            (dated_by_key if p["birth_date"] else undated_by_key)[p["last_key"]].add(pk)
        if p["mrn"]:
            blocks[("value", p["mrn"])].add(pk)
    shared_values: dict[str, set[int]] = defaultdict(set)
    for patient_id, value in PatientIdentifier.objects.filter(
        patient_id__in=list(patients)
    ).values_list("patient_id", "value"):
        shared_values[value].add(patient_id)
        blocks[("value", value)].add(patient_id)

    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 1 < len(members) <= MAX_BLOCK:
            pairs.update(combinations(sorted(members), 2))
    for key, undated in undated_by_key.items():
        everyone = undated | dated_by_key.get(key, set())
        for a in undated:
            pairs.update(tuple(sorted((a, b))) for b in everyone if b != a)

    pairs.update(p for p in trigram_pairs() if p[0] in patients and p[1] in patients)

    sharing = set()
    for value, members in shared_values.items():
        with_mrn = members | {pk for pk, p in patients.items() if p["mrn"] == value}
        sharing.update(combinations(sorted(with_mrn), 2))
    found = {}
    for a, b in pairs:
        score, name, reasons = score_pair(
            patients[a], patients[b], shared_identifier=(a, b) in sharing
        )
        if score >= THRESHOLD:
            found[(a, b)] = (score, name, reasons)
    return found


@transaction.atomic
def duplicate_candidates_refresh() -> dict[str, int]:
    """Recompute the open queue. Dismissed and merged pairs never come back; open pairs that no
    longer score are removed. Returns counts for the command's output."""
    found = find_candidate_pairs(_patients())
    existing = {(c.patient_a_id, c.patient_b_id): c for c in DuplicateCandidate.objects.all()}
    created = updated = 0
    new = []
    for (a, b), (score, name, reasons) in found.items():
        candidate = existing.get((a, b))
        if candidate is None:
            new.append(
                DuplicateCandidate(
                    patient_a_id=a, patient_b_id=b, score=score, name_score=name, reasons=reasons
                )
            )
        elif candidate.status == DuplicateCandidate.Status.OPEN and (
            candidate.score != score or candidate.reasons != reasons
        ):
            candidate.score, candidate.name_score, candidate.reasons = score, name, reasons
            candidate.save(update_fields=["score", "name_score", "reasons"])
            updated += 1
    created = len(DuplicateCandidate.objects.bulk_create(new, ignore_conflicts=True))
    stale = [
        c.pk
        for key, c in existing.items()
        if c.status == DuplicateCandidate.Status.OPEN and key not in found
    ]
    DuplicateCandidate.objects.filter(pk__in=stale).delete()
    return {"found": len(found), "created": created, "updated": updated, "removed": len(stale)}


@transaction.atomic
def duplicate_dismiss(*, actor: Actor, candidate: DuplicateCandidate, reason: str = "") -> None:
    """Mark a pair as two different people: it is never suggested again."""
    _require(actor, "patients.merge_patient")
    done = DuplicateCandidate.objects.filter(
        pk=candidate.pk, status=DuplicateCandidate.Status.OPEN
    ).update(
        status=DuplicateCandidate.Status.DISMISSED,
        decided_at=timezone.now(),
        decided_by=actor.user if actor.user_id else None,
        decision_reason=(reason or "").strip(),
    )
    if done != 1:
        raise ValidationError(_("This pair has already been dismissed or merged."))
    audit_record(
        actor=actor,
        action="dismiss_duplicate",
        obj=candidate,
        patient_id=candidate.patient_a_id,
        reason=(reason or "").strip(),
        details={"patient_ids": [candidate.patient_a_id, candidate.patient_b_id]},
    )
