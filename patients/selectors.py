"""Reads of the patient registry. Every one starts from ``restrict()``."""

import datetime as dt

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import Case, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.db.models.functions import JSONObject
from django.http import Http404

from accounts.permissions import can, restrict, restrict_split
from patients import counting
from patients.filters import PatientFilter
from patients.models import (
    DuplicateCandidate,
    IdentifierType,
    IdentityStatus,
    Patient,
    PatientHistory,
    PatientIdentifier,
    PatientMerge,
)
from patients.normalize import normalize_identifier, normalize_mrn, normalize_name

VIEW = "patients.view_patient"


def _listed(qs: QuerySet, *, user, include_deleted: bool, include_merged: bool) -> QuerySet:
    if not include_merged:
        qs = qs.unmerged()
    if include_deleted and can(user, "patients.restore_patient"):
        return qs
    return qs.alive()


def patient_queryset(
    *, user, perm: str = VIEW, include_deleted: bool = False, include_merged: bool = False
) -> QuerySet:
    """The patients the user may see: merged-away records are hidden (they only redirect)."""
    qs = restrict(Patient.objects.select_related("department"), user, perm)
    return _listed(qs, user=user, include_deleted=include_deleted, include_merged=include_merged)


def wants_deleted(data) -> bool:
    """``deleted=true`` in a query string asks for the deleted patients (restorers only)."""
    return str(data.get("deleted", "")).lower() in ("true", "1")


def patient_filter(*, user, data) -> PatientFilter:
    """The FilterSet of the list page and the API over the rows the user may list."""
    qs = patient_queryset(user=user, include_deleted=wants_deleted(data))
    return PatientFilter(data, queryset=qs)


def patient_list(*, user, filters: dict | None = None) -> QuerySet:
    """The filtered list; an invalid filter value gives nothing rather than everything."""
    filterset = patient_filter(user=user, data=filters or {})
    return filterset.qs if filterset.is_valid() else filterset.queryset.none()


def patient_count(*, user, data) -> int:
    """Exactly ``patient_filter(user=user, data=data).qs.count()``, counted in the disjoint parts
    of the user's scope (``restrict_split``) and added up: the same number, cheaper. On
    PostgreSQL the unfiltered department part comes from the counts the triggers keep
    (``patients.counting``). Invalid filters count 0, as they list nothing."""
    include_deleted = wants_deleted(data)
    filtered = any(name in data for name in PatientFilter.base_filters)
    split = restrict_split(Patient.objects.all(), user, VIEW)
    parts = [
        _listed(part, user=user, include_deleted=include_deleted, include_merged=False)
        for part in split.parts
    ]
    if (
        split.departments
        and split.direct_paths == ["department"]
        and counting.kept()
        and not filtered
        and not (include_deleted and can(user, "patients.restore_patient"))
    ):
        # The user's departments' listed patients, as the triggers keep them (``counting``),
        # plus the rest of the scope (patients of their studies elsewhere, shares, grants).
        return counting.listed_in(split.departments, plus=parts[1])
    if filtered:
        filterset = PatientFilter(data, queryset=Patient.objects.none())
        if not filterset.is_valid():
            return 0
        parts = [filterset.filter_queryset(part) for part in parts]
    return sum(part.count() for part in parts)


def patient_page(*, queryset: QuerySet, page_slice: slice) -> QuerySet:
    """One page (``page_slice``) of ``queryset``, one of ``patient_queryset``/``patient_filter``:
    the same rows in the same order as ``queryset[page_slice]``, found by their keys first (a
    "deferred join": the ``OFFSET`` walks the ``patient_listed_order`` index alone, not every
    skipped row of the table), then read by key.

    Each row carries its identifiers as the API shows them: on PostgreSQL as ``identifier_rows``
    (``type``, ``type_name``, ``value``), read in the same statement as an array, elsewhere as
    ``prefetched_identifiers`` (with their types) by a second query.

    The rows are read without the scope and filters around the keys: the keys come from
    ``queryset``, which has them; repeated around the subquery, they make PostgreSQL read the
    whole table again."""
    keys = queryset.values("pk")[page_slice]
    rows = Patient.objects.select_related("department")
    identifiers = PatientIdentifier.objects.select_related("type")
    if connection.vendor == "postgresql":
        rows = rows.annotate(
            identifier_rows=ArraySubquery(
                identifiers.filter(patient=OuterRef("pk"))
                .order_by(*PatientIdentifier._meta.ordering)
                .values(row=JSONObject(type="type__code", type_name="type__name", value="value"))
            )
        )
    else:
        rows = rows.prefetch_related(
            Prefetch("identifiers", identifiers, to_attr="prefetched_identifiers")
        )
    ordering = queryset.query.order_by or Patient._meta.ordering
    return rows.filter(pk__in=keys).order_by(*ordering)


def patient_get(*, user, pk: int, perm: str = VIEW, include_deleted: bool = False) -> Patient:
    """One patient, or 404 when it does not exist or lies outside the user's scope."""
    try:
        return (
            patient_queryset(user=user, perm=perm, include_deleted=include_deleted)
            .prefetch_related("identifiers__type")
            .get(pk=pk)
        )
    except (Patient.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def patient_possible_duplicates(
    *,
    user,
    last_name: str,
    first_name: str,
    birth_date: dt.date | None,
    exclude_pk: int | None = None,
) -> QuerySet:
    """Patients with the same name (ё = е, any case) and birth date, for the warning on create."""
    if not birth_date or not last_name:
        return Patient.objects.none()
    wanted = normalize_name(f"{last_name} {first_name}")
    qs = patient_queryset(user=user).filter(birth_date=birth_date, search_name__startswith=wanted)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    return qs[:10]


def identifier_types(*, user) -> QuerySet:
    return restrict(IdentifierType.objects.filter(is_active=True), user, None)


MAX_MERGE_CHAIN = 50


def _follow_merges(patient: Patient | None) -> Patient | None:
    """The record that finally holds a merged patient's data (A -> B -> C gives C)."""
    for _hop in range(MAX_MERGE_CHAIN):
        if patient is None or patient.merged_into_id is None:
            return patient
        patient = Patient.objects.select_related("department").get(pk=patient.merged_into_id)
    raise RuntimeError("Merge chain too long or circular")


def patient_resolve(
    *,
    mrn: str = "",
    identifier: str = "",
    identifier_type: str | None = None,
    user=None,
    for_update: bool = False,
) -> Patient | None:
    """The patient that an MRN or identifier denotes today, following merges to the survivor.

    Ingest calls it with a file's PatientID (as ``mrn`` and/or ``identifier``): a file that still
    carries a merged duplicate's MRN or identifier lands on the survivor. The MRN is tried
    first, then the identifier (of ``identifier_type``, a type code, when given), then former
    MRNs and identifiers kept in the identity history. Deleted patients are returned as they are;
    the caller decides. With ``user``, only patients in the user's scope are found.

    ``for_update=True`` (inside the caller's transaction) locks the survivor's row before
    returning it, so that a merge cannot slip in between the lookup and the rows the caller is
    about to link to the patient: a merge running at that moment waits for the caller, or the
    caller waits for the merge and is given the record it merged into.
    """
    found = None
    mrn = normalize_mrn(mrn)
    value = normalize_identifier(identifier)
    rows = PatientIdentifier.objects.filter(value=value) if value else None
    if rows is not None and identifier_type:
        rows = rows.filter(type__code=identifier_type)
    if mrn and rows is not None:
        # One query for both (ingest's case: a file's PatientID is tried as either); the MRN
        # match comes first.
        found = (
            Patient.objects.filter(Q(mrn=mrn) | Q(pk__in=rows.values("patient_id")))
            .annotate(by_mrn=Case(When(mrn=mrn, then=Value(0)), default=Value(1)))
            .order_by("by_mrn", "pk")
            .first()
        )
    elif mrn:
        found = Patient.objects.filter(mrn=mrn).first()
    elif rows is not None:
        row = rows.select_related("patient").first()
        found = row.patient if row else None
    if found is None:
        keys = [k for k in (mrn, value) if k]
        former = (
            PatientHistory.objects.filter(field__in=("mrn", "identifier"), former_key__in=keys)
            .order_by("-time", "-id")
            .first()
            if keys
            else None
        )
        found = former.patient if former else None
    found = _follow_merges(found)
    while for_update and found is not None:
        locked = _lock_against_merge(found.pk)
        if locked.merged_into_id is None:
            found = locked
            break
        found = _follow_merges(locked)  # merged while we waited for the lock
    if found is not None and user is not None:
        if not restrict(Patient.objects.filter(pk=found.pk), user, VIEW).exists():
            return None
    return found


def _lock_against_merge(pk: int) -> Patient:
    """The patient's row, locked until the caller's transaction ends so that no merge (which
    locks it FOR UPDATE) changes it meanwhile. On PostgreSQL a shared lock: uploads of many
    files for the same patient do not wait for each other, only a merge waits for them."""
    if connection.vendor == "postgresql":
        table = Patient._meta.db_table
        return Patient.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR SHARE", [pk])[0]
    return Patient.objects.select_for_update().get(pk=pk)


def patient_merged_survivor(*, user, pk: int) -> Patient | None:
    """For a merged record's old URL: the survivor it now lives in, if the user may see it."""
    try:
        merged = (
            restrict(Patient.objects.all(), user, VIEW)
            .filter(merged_into__isnull=False)
            .filter(pk=pk)
            .first()
        )
    except (ValueError, TypeError):
        return None
    survivor = _follow_merges(merged)
    if survivor is None:
        return None
    return patient_queryset(user=user, include_deleted=True).filter(pk=survivor.pk).first()


def patient_history(*, patient: Patient) -> QuerySet:
    """The identity history of a patient the caller has already fetched through a selector."""
    return PatientHistory.objects.filter(patient=patient).select_related("merge")


def patient_merges(*, patient: Patient) -> QuerySet:
    """Merges into this patient (newest first), for its page and the unmerge action."""
    return PatientMerge.objects.filter(survivor=patient).select_related("duplicate")


def merge_get(*, user, patient: Patient, pk) -> PatientMerge:
    """One merge into ``patient`` (already fetched in the user's scope), or 404."""
    try:
        return patient_merges(patient=patient).get(pk=pk)
    except (PatientMerge.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def reconciliation_list(*, user) -> QuerySet:
    """Unknown and provisional patients a registrar should identify, oldest first."""
    return (
        patient_queryset(user=user, perm="patients.change_patient")
        .filter(identity_status__in=[IdentityStatus.UNKNOWN, IdentityStatus.PROVISIONAL])
        .order_by("created_at", "id")
    )


def duplicate_queue(*, user, status: str = DuplicateCandidate.Status.OPEN) -> QuerySet:
    """Candidate pairs whose both patients the user may see, best score first."""
    visible = patient_queryset(user=user, perm="patients.merge_patient")
    qs = restrict(DuplicateCandidate.objects.all(), user, "patients.merge_patient")
    return (
        qs.filter(status=status, patient_a__in=visible, patient_b__in=visible)
        .select_related("patient_a", "patient_b")
        .order_by("-score", "id")
    )


def duplicate_get(*, user, pk) -> DuplicateCandidate:
    try:
        return duplicate_queue(user=user).get(pk=pk)
    except (DuplicateCandidate.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
