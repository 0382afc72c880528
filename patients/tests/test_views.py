"""Patient pages: every view against the role matrix (allowed / read-only / no role / anonymous)."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from patients.models import IdentifierType, Patient
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

READERS = ["administrator", "radiologist", "clinician", "registrar"]


@pytest.fixture
def patient():
    return PatientFactory(mrn="V1", last_name="Соколова", first_name="Ольга")


def _login(client, request, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    return user


# --- list -------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", READERS)
def test_list_is_shown_to_every_clinical_role(client, request, role, patient):
    _login(client, request, role)
    response = client.get(reverse("patients:list"))
    assert response.status_code == 200
    assert "Соколова" in response.content.decode()


def test_list_is_forbidden_without_the_view_permission(client, researcher, patient):
    client.force_login(researcher)
    assert client.get(reverse("patients:list")).status_code == 403


def test_list_requires_login(client, patient):
    response = client.get(reverse("patients:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_list_audits_the_patient_ids_it_showed(client, clinician, patient):
    client.force_login(clinician)
    client.get(reverse("patients:list"), {"q": "соколова"})
    event = AuditEvent.objects.get(action="list")
    assert event.details["patient_ids"] == [patient.pk]
    assert event.details["query"] == {"q": "соколова"}
    assert event.username == "clinician"


def test_list_searches_by_cyrillic_fragment(client, clinician, patient):
    PatientFactory(mrn="V2", last_name="Петров")
    client.force_login(clinician)
    body = client.get(reverse("patients:list"), {"q": "СОКОЛ"}).content.decode()
    assert "Соколова" in body and "Петров" not in body


def test_list_paginates(client, clinician):
    for n in range(30):
        PatientFactory(mrn=f"P{n:03d}", last_name=f"Пациент{n:03d}")
    client.force_login(clinician)
    first = client.get(reverse("patients:list"))
    second = client.get(reverse("patients:list"), {"page": 2})
    assert len(first.context["page"].object_list) == 25
    assert len(second.context["page"].object_list) == 5


def test_list_with_a_bad_date_shows_a_message_not_a_500(client, clinician, patient):
    client.force_login(clinician)
    response = client.get(reverse("patients:list"), {"birth_date_after": "31.02.2020"})
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 0


# --- detail -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", READERS)
def test_detail_is_shown_and_audited(client, request, role, patient):
    user = _login(client, request, role)
    response = client.get(patient.get_absolute_url())
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="view")
    assert (event.patient_id, event.user_id) == (patient.pk, user.pk)


def test_detail_of_an_unknown_id_is_404(client, clinician):
    client.force_login(clinician)
    assert client.get(reverse("patients:detail", args=[999999])).status_code == 404


def test_detail_is_404_for_a_user_without_access(client, researcher, patient):
    client.force_login(researcher)
    assert client.get(patient.get_absolute_url()).status_code == 404
    assert not AuditEvent.objects.filter(action="view").exists()


def test_detail_requires_login(client, patient):
    assert client.get(patient.get_absolute_url()).status_code == 302


# --- create -----------------------------------------------------------------------------------
FORM = {
    "mrn": "",
    "last_name": "Ёжиков",
    "first_name": "Семён",
    "middle_name": "",
    "birth_date": "2015-06-01",
    "sex": "M",
    "identity_status": "verified",
    "department": "",
    "phone": "",
    "email": "",
    "address": "",
    "notes": "",
    "ident-TOTAL_FORMS": "1",
    "ident-INITIAL_FORMS": "0",
    "ident-0-type": "",
    "ident-0-value": "",
}


def test_registrar_registers_a_patient(client, registrar):
    client.force_login(registrar)
    response = client.post(reverse("patients:create"), FORM)
    patient = Patient.objects.get(last_name="Ёжиков")
    assert response.status_code == 302 and response["Location"] == patient.get_absolute_url()
    assert AuditEvent.objects.filter(action="create", patient_id=patient.pk).exists()


@pytest.mark.parametrize("role", ["clinician", "radiologist", "researcher"])
def test_other_roles_cannot_register(client, request, role):
    _login(client, request, role)
    assert client.get(reverse("patients:create")).status_code == 403
    assert client.post(reverse("patients:create"), FORM).status_code == 403
    assert not Patient.objects.exists()


def test_register_requires_login(client):
    assert client.post(reverse("patients:create"), FORM).status_code == 302
    assert not Patient.objects.exists()


def test_register_warns_about_a_same_name_same_birth_date_patient(client, registrar):
    PatientFactory(mrn="OLD1", last_name="Ежиков", first_name="Семен", birth_date="2015-06-01")
    client.force_login(registrar)
    response = client.post(reverse("patients:create"), FORM)
    assert response.status_code == 200
    assert "OLD1" in response.content.decode()
    assert Patient.objects.count() == 1
    response = client.post(reverse("patients:create"), {**FORM, "confirm_duplicate": "on"})
    assert response.status_code == 302
    assert Patient.objects.count() == 2


def test_register_shows_field_errors_in_russian(client, registrar):
    client.force_login(registrar)
    snils = str(IdentifierType.objects.get(code="snils").pk)
    response = client.post(
        reverse("patients:create"),
        {**FORM, "birth_date": "32.13.2000", "ident-0-type": snils, "ident-0-value": "123"},
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Введите правильную дату" in body
    assert "СНИЛС должен содержать 11 цифр" in body
    assert not Patient.objects.exists()


def test_register_with_a_taken_mrn_is_a_field_error(client, registrar):
    PatientFactory(mrn="TAKEN")
    client.force_login(registrar)
    response = client.post(
        reverse("patients:create"), {**FORM, "mrn": "taken"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


# --- edit -------------------------------------------------------------------------------------
def test_registrar_edits_a_patient(client, registrar, patient):
    client.force_login(registrar)
    response = client.get(reverse("patients:edit", args=[patient.pk]))
    assert response.status_code == 200
    data = {
        **FORM,
        "mrn": "V1",
        "last_name": "Соколова-Белова",
        "first_name": "Ольга",
        "birth_date": "1980-05-17",
    }
    response = client.post(reverse("patients:edit", args=[patient.pk]), data)
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.last_name == "Соколова-Белова"
    event = AuditEvent.objects.get(action="update")
    assert event.details["changes"]["last_name"] == ["Соколова", "Соколова-Белова"]


@pytest.mark.parametrize("role", ["clinician", "radiologist", "administrator", "researcher"])
def test_other_roles_cannot_edit(client, request, role, patient):
    _login(client, request, role)
    assert client.post(reverse("patients:edit", args=[patient.pk]), FORM).status_code == 403


# --- delete and restore -------------------------------------------------------------------------
def test_delete_asks_for_confirmation_and_a_reason(client, registrar, patient):
    client.force_login(registrar)
    assert client.get(reverse("patients:delete", args=[patient.pk])).status_code == 200
    response = client.post(reverse("patients:delete", args=[patient.pk]), {"reason": ""})
    assert response.status_code == 200
    patient.refresh_from_db()
    assert not patient.is_deleted
    response = client.post(reverse("patients:delete", args=[patient.pk]), {"reason": "duplicate"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.is_deleted


@pytest.mark.parametrize("role", ["clinician", "radiologist", "administrator"])
def test_other_roles_cannot_delete(client, request, role, patient):
    _login(client, request, role)
    response = client.post(reverse("patients:delete", args=[patient.pk]), {"reason": "x"})
    assert response.status_code == 403


def test_a_deleted_patient_disappears_and_an_administrator_restores_it(
    client, registrar, administrator, patient
):
    client.force_login(registrar)
    client.post(reverse("patients:delete", args=[patient.pk]), {"reason": "duplicate"})
    assert patient not in client.get(reverse("patients:list")).context["page"].object_list
    assert client.post(reverse("patients:restore", args=[patient.pk])).status_code == 403

    client.force_login(administrator)
    deleted_list = client.get(reverse("patients:list"), {"deleted": "true"})
    assert list(deleted_list.context["page"].object_list) == [patient]
    assert client.post(reverse("patients:restore", args=[patient.pk])).status_code == 302
    patient.refresh_from_db()
    assert not patient.is_deleted


def test_pages_render_in_english_and_russian(client, clinician, patient):
    client.force_login(clinician)
    ru = client.get(reverse("patients:list"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    en = client.get(reverse("patients:list"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Пациенты" in ru
    assert "Patients" in en


def test_the_language_switcher_changes_the_language(client, clinician, patient):
    client.force_login(clinician)
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/patients/"})
    assert response.status_code == 302
    assert "Patients" in client.get(reverse("patients:list")).content.decode()
    client.post("/i18n/setlang/", {"language": "ru", "next": "/patients/"})
    assert "Пациенты" in client.get(reverse("patients:list")).content.decode()


def test_dates_are_shown_in_the_users_locale(client, clinician):
    patient = PatientFactory(birth_date="1980-05-17")
    client.force_login(clinician)
    ru = client.get(patient.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    en = client.get(patient.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "17.05.1980" in ru
    assert "05/17/1980" in en


def test_list_query_count_does_not_grow_with_rows(client, clinician, django_assert_max_num_queries):
    for n in range(25):
        PatientFactory(mrn=f"Q{n:03d}")
    client.force_login(clinician)
    # session, user, permissions (2), content type, the user's shares/grants, count, page,
    # audit, session save (+ its savepoint pair in the test's transaction): none per row.
    with django_assert_max_num_queries(12):
        assert client.get(reverse("patients:list")).status_code == 200
