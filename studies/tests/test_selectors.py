"""Selectors and the one FilterSet: every filter parameter, and scope before any lookup."""

import datetime as dt

import pytest
from django.http import Http404

from accounts.tests.factories import DepartmentFactory
from patients.tests.factories import PatientFactory
from studies import selectors
from studies.models import Study

from .conftest import dicom_bytes
from .scope import needs_department_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_studies(patient, import_file, department):
    other = PatientFactory(mrn="P-002", department=department, last_name="Петрова")
    ct = import_file(dicom_bytes(AccessionNumber="ACC-1", StudyDate="20260110"), urgency="stat")
    mr = import_file(
        dicom_bytes(PatientID="P-002", Modality="MR", StudyDate="20260301"), category="mr"
    )
    return Study.objects.get(pk=ct.study_id), Study.objects.get(pk=mr.study_id), other


def _ids(user, **filters):
    return {s.pk for s in selectors.study_list(user=user, filters=filters)}


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"modality": "CT"}, "ct"),
        ({"modality": "mr"}, "mr"),
        ({"category": "mr"}, "mr"),
        ({"urgency": "stat"}, "ct"),
        ({"date_after": "2026-02-01"}, "mr"),
        ({"date_before": "15.01.2026"}, "ct"),
        ({"q": "ACC-1"}, "ct"),
        ({"q": "P-002"}, "mr"),
        ({"q": "петр"}, "mr"),
        ({"department": "radiology"}, "both"),
    ],
)
def test_each_filter_keeps_the_matching_studies(clinician, two_studies, filters, expected):
    ct, mr, _ = two_studies
    wanted = {"ct": {ct.pk}, "mr": {mr.pk}, "both": {ct.pk, mr.pk}}[expected]
    assert _ids(clinician, **filters) == wanted


def test_the_patient_filter_keeps_one_patients_studies(clinician, two_studies):
    ct, mr, other = two_studies
    assert _ids(clinician, patient=other.pk) == {mr.pk}


def test_a_bad_filter_value_gives_nothing_rather_than_everything(clinician, two_studies):
    assert _ids(clinician, date_after="31.02.2026") == set()
    assert _ids(clinician, category="nonsense") == set()


def test_a_modality_matches_whole_codes_only(clinician, two_studies):
    ct, _, _ = two_studies
    Study.objects.filter(pk=ct.pk).update(modalities="CT\\SR")
    assert _ids(clinician, modality="SR") == {ct.pk}
    assert _ids(clinician, modality="C") == set()


def test_a_user_without_the_permission_sees_nothing(researcher, two_studies):
    assert _ids(researcher) == set()
    with pytest.raises(Http404):
        selectors.study_get(user=researcher, pk=two_studies[0].pk)


def test_getters_404_on_unknown_or_malformed_ids(clinician):
    for getter in (selectors.study_get, selectors.series_get, selectors.instance_get):
        with pytest.raises(Http404):
            getter(user=clinician, pk=999999)
        with pytest.raises(Http404):
            getter(user=clinician, pk="abc")


@needs_department_scope
def test_an_outsider_finds_nothing(outsider, study):
    assert _ids(outsider) == set()
    with pytest.raises(Http404):
        selectors.study_get(user=outsider, pk=study.pk)


def test_patient_studies_name_a_thumbnail_instance_and_skip_documents(clinician, study):
    (listed,) = selectors.patient_studies(user=clinician, patient_id=study.patient_id)
    instance = study.series.get(series_uid="1.2.3.4.1").instances.order_by("number", "id")[0]
    assert listed.thumbnail_instance_id == instance.pk


def test_upload_departments_are_the_users_own(registrar, department):
    DepartmentFactory(code="cardio")
    assert selectors.upload_departments(user=registrar) == [department]


def test_study_datetime_filter_uses_the_date(clinician, two_studies):
    ct, _, _ = two_studies
    assert ct.study_datetime.date() == dt.date(2026, 1, 10)
    assert _ids(clinician, date_after="2026-01-10", date_before="2026-01-10") == {ct.pk}
