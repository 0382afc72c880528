"""The possible-duplicates queue: what is found, how it scores, and dismissed pairs staying away."""

import datetime as dt
import io

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.audit import Actor
from patients import selectors
from patients.duplicates import duplicate_candidates_refresh, duplicate_dismiss
from patients.merge import patient_merge
from patients.models import DuplicateCandidate
from patients.tests.factories import PatientFactory, PatientIdentifierFactory, identifier_type

pytestmark = pytest.mark.django_db

BORN = dt.date(1980, 5, 7)


def _pairs():
    return {
        (c.patient_a.mrn, c.patient_b.mrn): c.reasons
        for c in DuplicateCandidate.objects.filter(status="open").select_related(
            "patient_a", "patient_b"
        )
    }


def test_same_birth_date_and_the_same_name_with_yo(db):
    PatientFactory(mrn="A", last_name="Фёдоров", first_name="Пётр", birth_date=BORN)
    PatientFactory(mrn="B", last_name="ФЕДОРОВ", first_name="Петр", birth_date=BORN)
    PatientFactory(mrn="C", last_name="Смирнов", first_name="Олег", birth_date=BORN)
    duplicate_candidates_refresh()
    assert _pairs() == {("A", "B"): ["name", "birth_date"]}


def test_a_latin_spelling_of_the_same_name_is_found(db):
    PatientFactory(mrn="A", last_name="Щукина", first_name="Юлия", middle_name="", birth_date=BORN)
    PatientFactory(
        mrn="B", last_name="Shchukina", first_name="Iuliia", middle_name="", birth_date=BORN
    )
    duplicate_candidates_refresh()
    assert _pairs() == {("A", "B"): ["name", "birth_date"]}


def test_day_and_month_swapped(db):
    PatientFactory(mrn="A", last_name="Орлов", first_name="Глеб", birth_date=dt.date(1990, 3, 4))
    PatientFactory(mrn="B", last_name="Орлов", first_name="Глеб", birth_date=dt.date(1990, 4, 3))
    PatientFactory(mrn="C", last_name="Орлов", first_name="Глеб", birth_date=dt.date(1991, 4, 3))
    duplicate_candidates_refresh()
    assert _pairs() == {("A", "B"): ["name", "birth_date_swapped"]}


def test_a_shared_identifier_value_even_with_different_names(db):
    a = PatientFactory(mrn="A", last_name="Орлов", birth_date=BORN)
    b = PatientFactory(mrn="B", last_name="Соколов", birth_date=dt.date(1970, 1, 1))
    PatientIdentifierFactory(patient=a, type=identifier_type("snils"), value="11223344595")
    PatientIdentifierFactory(patient=b, type=identifier_type("passport-ru"), value="1122334459")
    # Another hospital's record filed under the SNILS as its MRN.
    PatientFactory(
        mrn="11223344595",
        last_name="Иной",
        first_name="Марк",
        middle_name="Львович",
        birth_date=dt.date(1960, 1, 1),
    )
    duplicate_candidates_refresh()
    assert _pairs() == {("A", "11223344595"): ["identifier"]}


def test_different_birth_dates_without_an_identifier_are_not_a_pair(db):
    PatientFactory(mrn="A", last_name="Орлов", first_name="Глеб", birth_date=dt.date(1990, 3, 4))
    PatientFactory(mrn="B", last_name="Орлов", first_name="Глеб", birth_date=dt.date(1990, 3, 5))
    duplicate_candidates_refresh()
    assert _pairs() == {}


def test_an_unknown_birth_date_pairs_by_name_only_when_very_alike(db):
    PatientFactory(mrn="A", last_name="Орлов", first_name="Глеб", birth_date=BORN)
    PatientFactory(
        mrn="B", last_name="Orlov", first_name="Gleb", middle_name="Ilich", birth_date=None
    )
    PatientFactory(mrn="C", last_name="Орлова", first_name="Анна", middle_name="", birth_date=None)
    duplicate_candidates_refresh()
    assert set(_pairs()) == {("A", "B")}


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="pg_trgm blocking exists on PostgreSQL only; SQLite uses the key blocks tested above",
)
def test_a_misspelt_last_name_without_a_birth_date_is_found_by_trigrams(db):
    PatientFactory(
        mrn="A",
        last_name="Константинопольская",
        first_name="Александра",
        middle_name="Викторовна",
        birth_date=BORN,
    )
    PatientFactory(
        mrn="B",
        last_name="Константинапольская",
        first_name="Александра",
        middle_name="Викторовна",
        birth_date=None,
    )
    duplicate_candidates_refresh()
    assert _pairs() == {("A", "B"): ["name"]}


def test_dismissed_pairs_never_come_back_and_stale_ones_go(registrar):
    a = PatientFactory(mrn="A", last_name="Фёдоров", birth_date=BORN)
    b = PatientFactory(mrn="B", last_name="Федоров", birth_date=BORN)
    c = PatientFactory(mrn="C", last_name="Федоров", birth_date=BORN)
    duplicate_candidates_refresh()
    assert len(_pairs()) == 3
    ab = DuplicateCandidate.objects.get(patient_a=a, patient_b=b)
    duplicate_dismiss(actor=Actor(user=registrar), candidate=ab, reason="twins")
    c.last_name = "Смирнов"
    c.save()
    counts = duplicate_candidates_refresh()
    assert _pairs() == {}
    assert counts["removed"] == 2
    assert DuplicateCandidate.objects.get(pk=ab.pk).status == "dismissed"
    with pytest.raises(ValidationError, match="already been dismissed"):
        duplicate_dismiss(actor=Actor(user=registrar), candidate=ab)


def test_merged_patients_leave_the_queue(registrar):
    a = PatientFactory(mrn="A", last_name="Фёдоров", birth_date=BORN)
    b = PatientFactory(mrn="B", last_name="Федоров", birth_date=BORN)
    PatientFactory(mrn="C", last_name="Федоров", birth_date=BORN)
    duplicate_candidates_refresh()
    patient_merge(actor=Actor(user=registrar), survivor=a, duplicate=b, reason="same")
    assert set(_pairs()) == {("A", "C")}
    duplicate_candidates_refresh()
    assert set(_pairs()) == {("A", "C")}
    assert DuplicateCandidate.objects.get(patient_a=a, patient_b=b).status == "merged"


def test_the_queue_selector_needs_the_merge_permission(registrar, clinician):
    PatientFactory(mrn="A", last_name="Фёдоров", birth_date=BORN)
    PatientFactory(mrn="B", last_name="Федоров", birth_date=BORN)
    duplicate_candidates_refresh()
    assert selectors.duplicate_queue(user=registrar).count() == 1
    assert selectors.duplicate_queue(user=clinician).count() == 0


def test_the_refresh_command_reports_counts(db):
    PatientFactory(mrn="A", last_name="Фёдоров", birth_date=BORN)
    PatientFactory(mrn="B", last_name="Федоров", birth_date=BORN)
    out = io.StringIO()
    call_command("refresh_duplicates", stdout=out)
    assert out.getvalue().strip() == (
        "Possible duplicates: 1 found, 1 new, 0 updated, 0 no longer matching."
    )


def test_the_task_calls_the_refresh(db):
    from patients.tasks import refresh_duplicates

    PatientFactory(mrn="A", last_name="Фёдоров", birth_date=BORN)
    PatientFactory(mrn="B", last_name="Федоров", birth_date=BORN)
    assert refresh_duplicates.apply().get()["created"] == 1
