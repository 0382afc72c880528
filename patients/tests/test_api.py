"""/api/v1/patients/: the role matrix, the shared filters, the error shape and the audit."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from patients.models import Patient
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/patients/"
READERS = ["administrator", "radiologist", "clinician", "registrar"]

NEW = {
    "last_name": "Ёлкина",
    "first_name": "Мария",
    "birth_date": "1990-01-02",
    "sex": "F",
    "identifiers": [{"type": "snils", "value": "112-233-445 95"}],
}


def detail(pk):
    return f"{LIST}{pk}/"


@pytest.fixture
def patient():
    return PatientFactory(mrn="API1", last_name="Соколова", first_name="Ольга")


@pytest.mark.parametrize("role", READERS)
def test_list_for_every_clinical_role(api_client, request, role, patient):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["results"][0]["mrn"] == "API1"


def test_list_is_forbidden_without_the_permission(api_client, researcher, patient):
    api_client.force_authenticate(researcher)
    response = api_client.get(LIST)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_anonymous_gets_401_in_the_error_shape(api_client, patient):
    response = api_client.get(LIST, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
            "details": None,
        },
    }


def test_token_authentication(api_client, clinician, patient):
    from accounts.audit import Actor
    from accounts.tokens import token_create

    _token, key = token_create(actor=Actor.system("test"), user=clinician, name="test")
    response = api_client.get(LIST, HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200


def test_list_uses_the_same_filters_as_the_page(api_client, clinician, patient):
    PatientFactory(mrn="API2", last_name="Петров")
    api_client.force_authenticate(clinician)
    assert [p["mrn"] for p in api_client.get(LIST, {"q": "СОКОЛ"}).json()["results"]] == ["API1"]
    assert [p["mrn"] for p in api_client.get(LIST, {"mrn": "api2"}).json()["results"]] == ["API2"]
    ordered = api_client.get(LIST, {"ordering": "-mrn"}).json()["results"]
    assert [p["mrn"] for p in ordered] == ["API2", "API1"]


def test_list_paginates_with_page_size(api_client, clinician):
    PatientFactory.create_batch(7)
    api_client.force_authenticate(clinician)
    body = api_client.get(LIST, {"page_size": 5, "page": 2}).json()
    assert body["count"] == 7 and len(body["results"]) == 2


def test_a_bad_filter_value_is_a_400_in_the_error_shape(api_client, clinician):
    api_client.force_authenticate(clinician)
    response = api_client.get(LIST, {"birth_date": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "birth_date" in response.json()["error"]["details"]


def test_list_query_count_does_not_grow_with_rows(
    api_client, clinician, django_assert_max_num_queries
):
    PatientFactory.create_batch(20)
    api_client.force_authenticate(clinician)
    with django_assert_max_num_queries(12):
        assert api_client.get(LIST).status_code == 200


def test_list_and_retrieve_are_audited(api_client, clinician, patient):
    api_client.force_authenticate(clinician)
    api_client.get(LIST)
    api_client.get(detail(patient.pk))
    assert AuditEvent.objects.get(action="list").details["patient_ids"] == [patient.pk]
    assert AuditEvent.objects.get(action="view").patient_id == patient.pk


def test_retrieve_of_an_unknown_id_is_404_in_the_error_shape(api_client, clinician):
    api_client.force_authenticate(clinician)
    response = api_client.get(detail(999999))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_registrar_creates_a_patient_with_identifiers(api_client, registrar):
    api_client.force_authenticate(registrar)
    response = api_client.post(LIST, NEW, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["mrn"].startswith("P")
    assert body["identifiers"] == [{"type": "snils", "type_name": "СНИЛС", "value": "11223344595"}]
    assert AuditEvent.objects.filter(action="create", patient_id=body["id"]).exists()


@pytest.mark.parametrize("role", ["clinician", "radiologist", "administrator", "researcher"])
def test_other_roles_cannot_create(api_client, request, role):
    api_client.force_authenticate(request.getfixturevalue(role))
    assert api_client.post(LIST, NEW, format="json").status_code == 403
    assert not Patient.objects.exists()


def test_invalid_payload_gives_field_errors_in_russian(api_client, registrar):
    api_client.force_authenticate(registrar)
    payload = {**NEW, "birth_date": "31.02.1990", "identifiers": [{"type": "snils", "value": "1"}]}
    response = api_client.post(LIST, payload, format="json", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "birth_date" in error["details"]
    assert "СНИЛС должен содержать 11 цифр" in str(error["details"]["identifiers"])
    assert not Patient.objects.exists()


def test_a_taken_mrn_is_a_400_not_a_500(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    response = api_client.post(LIST, {**NEW, "mrn": "api1", "identifiers": []}, format="json")
    assert response.status_code == 400
    assert "mrn" in response.json()["error"]["details"]


def test_registrar_edits_and_changes_are_audited(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    response = api_client.patch(detail(patient.pk), {"phone": "+7 900 000-00-00"}, format="json")
    assert response.status_code == 200
    assert response.json()["phone"] == "+7 900 000-00-00"
    assert (
        AuditEvent.objects.get(action="update").details["changes"]["phone"][1] == "+7 900 000-00-00"
    )


def test_clinician_cannot_edit(api_client, clinician, patient):
    api_client.force_authenticate(clinician)
    assert api_client.patch(detail(patient.pk), {"phone": "1"}, format="json").status_code == 403


def test_delete_needs_a_reason_and_restore_needs_an_administrator(
    api_client, registrar, administrator, patient
):
    api_client.force_authenticate(registrar)
    assert api_client.delete(detail(patient.pk), {}, format="json").status_code == 400
    assert (
        api_client.delete(detail(patient.pk), {"reason": "duplicate"}, format="json").status_code
        == 204
    )
    assert api_client.get(detail(patient.pk)).status_code == 404
    assert api_client.post(f"{detail(patient.pk)}restore/").status_code == 403

    api_client.force_authenticate(administrator)
    response = api_client.post(f"{detail(patient.pk)}restore/")
    assert response.status_code == 200
    assert response.json()["is_deleted"] is False


def test_the_throttle_answers_429_with_retry_after(api_client, clinician, settings):
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import UserRateThrottle

    cache.clear()
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "user": "2/min"}
    original = UserRateThrottle.THROTTLE_RATES
    UserRateThrottle.THROTTLE_RATES = rates
    try:
        api_client.force_authenticate(clinician)
        statuses = [api_client.get(LIST).status_code for _ in range(3)]
        response = api_client.get(LIST)
    finally:
        UserRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert statuses == [200, 200, 429]
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_the_schema_documents_the_patient_endpoints(api_client):
    response = api_client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/patients/" in paths and "/api/v1/patients/{id}/restore/" in paths


def test_a_same_name_same_birth_date_patient_is_a_409_with_the_candidates(api_client, registrar):
    existing = PatientFactory(
        mrn="OLD1", last_name="Елкина", first_name="Мария", birth_date="1990-01-02"
    )
    api_client.force_authenticate(registrar)
    payload = {**NEW, "identifiers": []}
    response = api_client.post(LIST, payload, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "possible_duplicate"
    assert error["details"]["candidates"][0] == {
        "id": existing.pk,
        "mrn": "OLD1",
        "full_name": existing.full_name,
    }
    assert Patient.objects.count() == 1
    response = api_client.post(LIST, {**payload, "confirm_duplicate": True}, format="json")
    assert response.status_code == 201
    assert Patient.objects.count() == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**NEW, "sex": "X"}, "sex"),
        ({**NEW, "identity_status": "sure"}, "identity_status"),
        ({**NEW, "email": "not-an-email"}, "email"),
        ({**NEW, "last_name": "Я" * 101}, "last_name"),
        ({**NEW, "identifiers": [{"type": "no-such-type", "value": "1"}]}, "identifiers"),
        ({**NEW, "department": "no-such-department"}, "department"),
        ({**NEW, "birth_date": "2020-13-01"}, "birth_date"),
    ],
)
def test_bad_payloads_are_400_field_errors(api_client, registrar, payload, field):
    api_client.force_authenticate(registrar)
    response = api_client.post(LIST, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Patient.objects.exists()


def test_malformed_json_is_a_400_in_the_error_shape(api_client, registrar):
    api_client.force_authenticate(registrar)
    response = api_client.post(LIST, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_list_rows_carry_their_identifiers_as_the_detail_does(api_client, clinician, department):
    from patients.tests.factories import (
        PatientFactory,
        PatientIdentifierFactory,
        identifier_type,
    )

    api_client.force_authenticate(clinician)
    with_ids = PatientFactory(department=department, last_name="Аа")
    PatientIdentifierFactory(patient=with_ids, type=identifier_type("snils"))
    PatientIdentifierFactory(
        patient=with_ids, type=identifier_type("oms"), value="1234567890123456"
    )
    PatientFactory(department=department, last_name="Бб")
    rows = api_client.get(LIST).json()["results"]
    detail = api_client.get(f"{LIST}{with_ids.pk}/").json()
    assert [r["last_name"] for r in rows] == ["Аа", "Бб"]
    assert rows[0]["identifiers"] == detail["identifiers"] and len(detail["identifiers"]) == 2
    assert rows[1]["identifiers"] == []


def test_list_rows_are_exactly_what_the_generic_serializer_makes(department, settings):
    """``PatientSerializer.row`` (the list's written-out rows) against DRF's field-by-field
    ``to_representation``, for rows with and without the optional values."""
    import datetime as dt

    from django.utils import timezone
    from rest_framework import serializers

    from patients.api.serializers import PatientSerializer
    from patients.selectors import patient_page
    from patients.tests.factories import PatientIdentifierFactory, identifier_type

    settings.TIME_ZONE = "Asia/Yekaterinburg"  # a zone whose offset shows in the output
    full = PatientFactory(
        department=department,
        last_name="Ёлкина",
        middle_name="",
        phone="+7 900 000-00-00",
        email="e@example.org",
        address="Пермь",
        notes="аллергия",
        sex="F",
        identity_status="verified",
    )
    PatientIdentifierFactory(patient=full, type=identifier_type("snils"))
    bare = PatientFactory(
        department=None, last_name="", first_name="", middle_name="", birth_date=None, sex=""
    )
    Patient.objects.filter(pk=bare.pk).update(deleted_at=timezone.now() - dt.timedelta(days=1))
    queryset = Patient.objects.filter(pk__in=[full.pk, bare.pk]).order_by("pk")

    class Generic(serializers.ListSerializer):
        pass

    with timezone.override("Asia/Yekaterinburg"):
        for rows in (list(patient_page(queryset=queryset, page_slice=slice(0, 2))), queryset):
            fast = PatientSerializer(rows, many=True).data
            generic = Generic(child=PatientSerializer(), instance=rows).data
            assert fast == generic
            assert [list(r) for r in fast] == [list(r) for r in generic]  # the same key order
    assert fast[0]["identifiers"] and fast[1]["department"] is None and fast[1]["is_deleted"]
    assert fast[0]["created_at"].endswith("+05:00")
