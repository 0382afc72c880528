"""One test per filter parameter of the shared FilterSet, through the page's selector."""

import datetime as dt

import pytest

from patients.selectors import patient_list
from patients.tests.factories import PatientFactory, PatientIdentifierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(other_department, clinician):
    clinician.departments.add(other_department)  # scope: the filters are tested across both
    return {
        "fedorov": PatientFactory(
            mrn="A1",
            last_name="Фёдоров",
            first_name="Пётр",
            birth_date=dt.date(1980, 5, 17),
            sex="M",
        ),
        "ivanova": PatientFactory(
            mrn="A2",
            last_name="Иванова",
            first_name="Анна",
            birth_date=dt.date(1975, 12, 1),
            sex="F",
            identity_status="provisional",
        ),
        "smith": PatientFactory(
            mrn="A3",
            last_name="Smith",
            first_name="John",
            birth_date=dt.date(2001, 3, 9),
            sex="M",
            department=other_department,
            identity_status="unknown",
        ),
    }


def _mrns(user, **filters):
    return sorted(p.mrn for p in patient_list(user=user, filters=filters))


def test_q_finds_a_cyrillic_name_fragment_in_any_case_with_yo_as_ye(clinician, people):
    assert _mrns(clinician, q="ФЕДОР") == ["A1"]
    assert _mrns(clinician, q="фёд") == ["A1"]
    assert _mrns(clinician, q="петр федоров") == ["A1"]


def test_q_finds_a_latin_name_fragment(clinician, people):
    assert _mrns(clinician, q="smi") == ["A3"]


def test_q_finds_an_mrn(clinician, people):
    assert _mrns(clinician, q="a2") == ["A2"]


def test_q_finds_an_identifier_in_any_spelling(clinician, people):
    PatientIdentifierFactory(patient=people["ivanova"], value="11223344595")
    assert _mrns(clinician, q="112-233-445 95") == ["A2"]


def test_q_finds_a_birth_date_in_russian_and_iso_form(clinician, people):
    assert _mrns(clinician, q="17.05.1980") == ["A1"]
    assert _mrns(clinician, q="1980-05-17") == ["A1"]


def test_name(clinician, people):
    assert _mrns(clinician, name="иван") == ["A2"]


def test_mrn_is_exact(clinician, people):
    assert _mrns(clinician, mrn="a1") == ["A1"]
    assert _mrns(clinician, mrn="A") == []


def test_identifier(clinician, people):
    PatientIdentifierFactory(patient=people["smith"], value="11223344595")
    assert _mrns(clinician, identifier="11223344595") == ["A3"]


def test_birth_date(clinician, people):
    assert _mrns(clinician, birth_date="01.12.1975") == ["A2"]


def test_birth_date_range(clinician, people):
    assert _mrns(clinician, birth_date_after="1976-01-01") == ["A1", "A3"]
    assert _mrns(clinician, birth_date_before="1980-05-17") == ["A1", "A2"]
    assert _mrns(clinician, birth_date_after="1976-01-01", birth_date_before="2000-01-01") == ["A1"]


def test_sex(clinician, people):
    assert _mrns(clinician, sex="F") == ["A2"]


def test_identity_status(clinician, people):
    assert _mrns(clinician, identity_status="unknown") == ["A3"]


def test_department(clinician, people, other_department):
    assert _mrns(clinician, department=str(other_department.pk)) == ["A3"]


def test_ordering(clinician, people):
    ordered = [p.mrn for p in patient_list(user=clinician, filters={"ordering": "-birth_date"})]
    assert ordered == ["A3", "A1", "A2"]


def test_an_invalid_filter_value_returns_nothing_rather_than_everything(clinician, people):
    assert _mrns(clinician, birth_date="not a date") == []


def test_deleted_patients_are_not_listed(clinician, people):
    from django.utils import timezone

    people["fedorov"].deleted_at = timezone.now()
    people["fedorov"].save()
    assert _mrns(clinician) == ["A2", "A3"]


def test_a_user_without_the_view_permission_sees_nothing(researcher, people):
    assert _mrns(researcher) == []


def test_name_matches_are_ordered_by_name_with_yo_as_ye(clinician):
    for mrn, last in (("N1", "Ёлкин"), ("N2", "Елагин"), ("N3", "Ежов")):
        PatientFactory(mrn=mrn, last_name=last, first_name="Пётр")
    # ежов < елагин < ёлкин (= елкин)
    assert [p.mrn for p in patient_list(user=clinician, filters={"q": "е"})] == ["N3", "N2", "N1"]
    explicit = patient_list(user=clinician, filters={"q": "е", "ordering": "mrn"})
    assert [p.mrn for p in explicit] == ["N1", "N2", "N3"]
