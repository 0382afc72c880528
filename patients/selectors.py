"""Reads of the patient registry. Every one starts from ``restrict()``."""

import datetime as dt

from django.db.models import QuerySet
from django.http import Http404

from accounts.permissions import can, restrict
from patients.filters import PatientFilter
from patients.models import IdentifierType, Patient
from patients.normalize import normalize_name

VIEW = "patients.view_patient"


def patient_queryset(*, user, perm: str = VIEW, include_deleted: bool = False) -> QuerySet:
    qs = restrict(Patient.objects.select_related("department"), user, perm)
    if include_deleted and can(user, "patients.restore_patient"):
        return qs
    return qs.alive()


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
