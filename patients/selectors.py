"""Reads of the patient registry. Every one starts from ``restrict()``."""

import datetime as dt

from django.db.models import QuerySet
from django.http import Http404

from accounts.permissions import can, restrict
from patients.models import IdentifierType, Patient
from patients.normalize import normalize_name

VIEW = "patients.view_patient"


def patient_queryset(*, user, perm: str = VIEW, include_deleted: bool = False) -> QuerySet:
    qs = restrict(Patient.objects.select_related("department"), user, perm)
    if include_deleted and can(user, "patients.restore_patient"):
        return qs
    return qs.alive()


def patient_list(*, user, filters: dict | None = None, include_deleted: bool = False) -> QuerySet:
    """The page's and the API's list: the shared FilterSet over the restricted rows."""
    from patients.filters import PatientFilter

    qs = patient_queryset(user=user, include_deleted=include_deleted)
    filterset = PatientFilter(filters or {}, queryset=qs)
    if not filterset.is_valid():
        return qs.none()
    return filterset.qs


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
