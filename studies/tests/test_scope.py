"""Study scope: the performing department and the patient's department see a study; a
patient's identity is visible to whoever sees one of their studies; a patient's share or
emergency grant opens their studies too."""

import pytest

from accounts.audit import Actor
from accounts.emergency import emergency_grant
from accounts.permissions import restrict
from accounts.sharing import share_grant
from patients.models import Patient
from patients.tests.factories import PatientFactory
from studies.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(department, other_department):
    """Performed in radiology for a patient of ENT."""
    patient = PatientFactory(mrn="ST1", department=other_department)
    return Study.objects.create(study_uid="1.2.3.4", patient=patient, department=department)


def test_the_performing_and_the_patient_department_see_the_study(clinician, outsider, study):
    assert list(restrict(Study.objects.all(), clinician, "studies.view_study")) == [study]
    assert list(restrict(Study.objects.all(), outsider, "studies.view_study")) == [study]


def test_a_third_department_does_not(study):
    from accounts.tests.factories import DepartmentFactory, UserFactory

    third = UserFactory(username="third", role="Clinician", departments=[DepartmentFactory()])
    assert not restrict(Study.objects.all(), third, "studies.view_study").exists()


def test_the_patient_is_visible_through_their_study_once(clinician, study, department):
    Study.objects.create(study_uid="1.2.3.5", patient=study.patient, department=department)
    visible = restrict(Patient.objects.all(), clinician, "patients.view_patient")
    assert list(visible) == [study.patient]  # once, though two studies match


def test_a_share_or_emergency_grant_of_the_patient_opens_their_studies(administrator, study):
    from accounts.tests.factories import DepartmentFactory, UserFactory

    consultant = UserFactory(username="consultant", role="Radiologist", departments=[])
    doctor = UserFactory(username="doctor", role="Clinician", departments=[DepartmentFactory()])
    share_grant(actor=Actor(user=administrator), obj=study.patient, user=consultant)
    emergency_grant(actor=Actor(user=doctor), obj=study.patient, reason="Unconscious in ER")
    for user in (consultant, doctor):
        assert list(restrict(Study.objects.all(), user, "studies.view_study")) == [study]
