"""Identity history: every identity change is kept (who, when, before -> after) and searchable."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from accounts.audit import Actor
from patients import selectors
from patients.models import PatientHistory
from patients.services import IdentifierInput, patient_identify, patient_register, patient_update
from patients.tests.factories import PatientFactory, identifier_type

pytestmark = pytest.mark.django_db


def _rows(patient):
    return list(
        PatientHistory.objects.filter(patient=patient)
        .order_by("id")
        .values_list("event", "field", "before", "after", "username")
    )


def test_registration_is_the_first_history_entry(registrar):
    patient = patient_register(
        actor=Actor(user=registrar),
        data={"last_name": "Ёлкина", "first_name": "Мария"},
        identifiers=[IdentifierInput(type=identifier_type("snils"), value="112-233-445 95")],
    )
    assert _rows(patient) == [
        ("create", "", "", "Ёлкина Мария", "registrar"),
        ("create", "identifier", "", "snils:11223344595", "registrar"),
    ]


def test_every_identity_field_change_is_kept_with_who_and_before_after(registrar):
    patient = PatientFactory(mrn="H1", last_name="Иванова", first_name="Анна")
    patient_update(
        actor=Actor(user=registrar),
        patient=patient,
        data={
            "mrn": "H2",
            "last_name": "Петрова",
            "birth_date": dt.date(1981, 1, 2),
            "sex": "F",
            "identity_status": "provisional",
            "phone": "+7 000",  # not an identity field: audited, not in the history
        },
    )
    assert _rows(patient) == [
        ("update", "mrn", "H1", "H2", "registrar"),
        ("update", "last_name", "Иванова", "Петрова", "registrar"),
        ("update", "birth_date", "1980-05-17", "1981-01-02", "registrar"),
        ("update", "sex", "M", "F", "registrar"),
        ("update", "identity_status", "verified", "provisional", "registrar"),
    ]


def test_identifier_changes_are_kept_one_row_each(registrar):
    patient = PatientFactory(mrn="H1")
    snils = identifier_type("snils")
    patient_update(
        actor=Actor(user=registrar),
        patient=patient,
        data={},
        identifiers=[IdentifierInput(type=snils, value="11223344595")],
    )
    patient_update(actor=Actor(user=registrar), patient=patient, data={}, identifiers=[])
    assert [r[:4] for r in _rows(patient)] == [
        ("update", "identifier", "", "snils:11223344595"),
        ("update", "identifier", "snils:11223344595", ""),
    ]


def test_no_change_writes_no_history(registrar):
    patient = PatientFactory(mrn="H1")
    patient_update(actor=Actor(user=registrar), patient=patient, data={"mrn": "H1"})
    assert _rows(patient) == []


@pytest.mark.parametrize("query", [{"q": "иванова анна"}, {"name": "ИВАНОВА"}, {"q": "Иванова"}])
def test_search_finds_a_patient_by_a_former_name(registrar, query):
    patient = PatientFactory(mrn="H1", last_name="Иванова", first_name="Анна")
    PatientFactory(mrn="H9", last_name="Сидорова", first_name="Анна")
    patient_update(actor=Actor(user=registrar), patient=patient, data={"last_name": "Петрова"})
    assert list(selectors.patient_list(user=registrar, filters=query)) == [patient]


@pytest.mark.parametrize("query", [{"q": "112-233-445 95"}, {"identifier": "11223344595"}])
def test_search_finds_a_patient_by_a_former_identifier(registrar, query):
    patient = PatientFactory(mrn="H1")
    snils = identifier_type("snils")
    patient_update(
        actor=Actor(user=registrar),
        patient=patient,
        data={},
        identifiers=[IdentifierInput(type=snils, value="11223344595")],
    )
    patient_update(actor=Actor(user=registrar), patient=patient, data={}, identifiers=[])
    assert list(selectors.patient_list(user=registrar, filters=query)) == [patient]


def test_search_and_resolve_find_a_patient_by_a_former_mrn(registrar):
    patient = PatientFactory(mrn="OLD-1")
    patient_update(actor=Actor(user=registrar), patient=patient, data={"mrn": "NEW-1"})
    assert list(selectors.patient_list(user=registrar, filters={"q": "OLD-1"})) == [patient]
    assert selectors.patient_resolve(mrn="old-1") == patient


def test_search_by_a_former_name_does_not_find_others(registrar):
    patient = PatientFactory(mrn="H1", last_name="Иванова")
    patient_update(actor=Actor(user=registrar), patient=patient, data={"last_name": "Петрова"})
    assert list(selectors.patient_list(user=registrar, filters={"q": "Сидорова"})) == []


# --- identify ---------------------------------------------------------------------------------
def test_identifying_an_unknown_patient_fills_in_and_verifies(registrar):
    patient = PatientFactory(
        mrn="T1", last_name="", first_name="", birth_date=None, identity_status="unknown"
    )
    patient_identify(
        actor=Actor(user=registrar),
        patient=patient,
        data={"last_name": "Кузнецов", "first_name": "Олег", "birth_date": dt.date(1970, 3, 4)},
        reason="Relatives identified him",
    )
    patient.refresh_from_db()
    assert (patient.identity_status, patient.last_name) == ("verified", "Кузнецов")
    events = set(PatientHistory.objects.filter(patient=patient).values_list("event", "field"))
    assert ("identify", "identity_status") in events and ("identify", "last_name") in events


def test_identifying_requires_name_and_birth_date(registrar):
    patient = PatientFactory(
        mrn="T1", last_name="", first_name="", birth_date=None, identity_status="unknown"
    )
    with pytest.raises(ValidationError) as exc:
        patient_identify(actor=Actor(user=registrar), patient=patient, data={"last_name": "Х"})
    assert set(exc.value.message_dict) == {"first_name", "birth_date"}
    patient.refresh_from_db()
    assert patient.identity_status == "unknown" and patient.last_name == ""


def test_a_verified_patient_is_not_identified_again(registrar):
    patient = PatientFactory(mrn="V1")
    with pytest.raises(ValidationError, match="already identified"):
        patient_identify(actor=Actor(user=registrar), patient=patient, data={})
