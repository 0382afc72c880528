"""Patients in the admin: reads audited, writes through the services, no hard delete."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from patients.models import Patient
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    return PatientFactory(mrn="ADM1", last_name="Волкова")


def test_the_changelist_audits_the_patients_it_shows(client, superuser, patient):
    client.force_login(superuser)
    response = client.get(reverse("admin:patients_patient_changelist"))
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="list")
    assert event.details["patient_ids"] == [patient.pk] and event.details["admin"] is True


def test_the_change_page_audits_the_read(client, superuser, patient):
    client.force_login(superuser)
    url = reverse("admin:patients_patient_change", args=[patient.pk])
    assert client.get(url).status_code == 200
    assert AuditEvent.objects.get(action="view").patient_id == patient.pk


def test_adding_in_the_admin_goes_through_the_service(client, superuser):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:patients_patient_add"),
        {
            "mrn": "",
            "last_name": "Орлов",
            "first_name": "Глеб",
            "sex": "M",
            "identity_status": "verified",
        },
    )
    assert response.status_code == 302
    patient = Patient.objects.get(last_name="Орлов")
    assert patient.mrn.startswith("P")
    assert AuditEvent.objects.filter(action="create", patient_id=patient.pk).exists()


def test_a_missing_last_name_is_a_field_error_in_the_admin(client, superuser):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:patients_patient_add"),
        {"mrn": "", "last_name": "", "sex": "M", "identity_status": "verified"},
    )
    assert response.status_code == 200
    assert "last_name" in response.context["adminform"].form.errors
    assert not Patient.objects.exists()


def test_changes_in_the_admin_are_audited(client, superuser, patient):
    client.force_login(superuser)
    url = reverse("admin:patients_patient_change", args=[patient.pk])
    response = client.post(
        url,
        {
            "mrn": "ADM1",
            "last_name": "Волкова-Зайцева",
            "first_name": patient.first_name,
            "middle_name": patient.middle_name,
            "birth_date": "1980-05-17",
            "sex": "M",
            "identity_status": "verified",
            "department": patient.department_id,
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="update")
    assert event.details["changes"]["last_name"] == ["Волкова", "Волкова-Зайцева"]


def test_there_is_no_hard_delete_in_the_admin(client, superuser, patient):
    client.force_login(superuser)
    url = reverse("admin:patients_patient_delete", args=[patient.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_clinicians_have_no_admin(client, clinician, patient):
    client.force_login(clinician)
    response = client.get(reverse("admin:patients_patient_changelist"))
    assert response.status_code == 302  # to the admin login: not staff


def test_a_deleted_patient_is_read_only_in_the_admin(client, superuser, patient):
    from django.utils import timezone

    Patient.objects.filter(pk=patient.pk).update(deleted_at=timezone.now())
    client.force_login(superuser)
    url = reverse("admin:patients_patient_change", args=[patient.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"mrn": "ADM1", "last_name": "Другая", "sex": "M", "identity_status": "verified"}
    )
    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.last_name == "Волкова"


def test_deleted_patients_are_hidden_from_staff_who_cannot_restore(client, registrar, patient):
    from django.utils import timezone

    registrar.is_staff = True
    registrar.save()
    Patient.objects.filter(pk=patient.pk).update(deleted_at=timezone.now())
    client.force_login(registrar)
    response = client.get(reverse("admin:patients_patient_changelist"))
    assert list(response.context["cl"].result_list) == []
