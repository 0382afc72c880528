import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients import services
from patients.models import IdentityStatus, Patient
from patients.services import IdentifierInput
from patients.tests.factories import PatientFactory, identifier_type

pytestmark = pytest.mark.django_db


def _data(**overrides):
    data = {
        "mrn": "",
        "last_name": "Ёлкина",
        "first_name": "Мария",
        "middle_name": "Сергеевна",
        "birth_date": dt.date(1990, 1, 2),
        "sex": "F",
    }
    data.update(overrides)
    return data


def test_register_generates_an_mrn_and_audits_in_the_same_transaction(registrar):
    patient = services.patient_register(actor=Actor(user=registrar), data=_data())
    assert patient.mrn.startswith("P")
    event = AuditEvent.objects.get(action="create", patient_id=patient.pk)
    assert event.user_id == registrar.pk
    assert event.object_type == "patients.patient"
    assert event.details["fields"]["last_name"] == "Ёлкина"


def test_an_unknown_patient_gets_a_temporary_mrn_and_needs_no_name(registrar):
    patient = services.patient_register(
        actor=Actor(user=registrar),
        data={"identity_status": IdentityStatus.UNKNOWN, "sex": "U"},
    )
    assert patient.mrn.startswith("T")
    with translation.override("en"):
        assert patient.full_name == "Unidentified patient"


def test_a_verified_patient_needs_a_last_name(registrar):
    with pytest.raises(ValidationError) as info:
        services.patient_register(actor=Actor(user=registrar), data=_data(last_name=""))
    assert "last_name" in info.value.message_dict


def test_register_stores_normalised_identifiers(registrar):
    patient = services.patient_register(
        actor=Actor(user=registrar),
        data=_data(),
        identifiers=[IdentifierInput(type=identifier_type("snils"), value="112-233-445 95")],
    )
    assert [i.value for i in patient.identifiers.all()] == ["11223344595"]


def test_a_taken_mrn_is_a_field_error_and_nothing_is_written(registrar):
    PatientFactory(mrn="A100")
    before = (Patient.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError) as info:
        services.patient_register(actor=Actor(user=registrar), data=_data(mrn=" a100 "))
    assert "mrn" in info.value.message_dict
    assert (Patient.objects.count(), AuditEvent.objects.count()) == before


def test_an_identifier_of_another_patient_is_refused(registrar):
    other = PatientFactory(mrn="OWNER1")
    services.patient_update(
        actor=Actor(user=registrar),
        patient=other,
        data={},
        identifiers=[IdentifierInput(type=identifier_type("snils"), value="11223344595")],
    )
    with pytest.raises(ValidationError, match="OWNER1"):
        services.patient_register(
            actor=Actor(user=registrar),
            data=_data(),
            identifiers=[IdentifierInput(type=identifier_type("snils"), value="112 233 445 95")],
        )


def test_register_requires_the_permission(clinician):
    with pytest.raises(PermissionDenied):
        services.patient_register(actor=Actor(user=clinician), data=_data())


def test_update_records_before_and_after(registrar):
    patient = PatientFactory(last_name="Петров")
    services.patient_update(
        actor=Actor(user=registrar), patient=patient, data={"last_name": "Петровский"}
    )
    event = AuditEvent.objects.get(action="update", patient_id=patient.pk)
    assert event.details["changes"] == {"last_name": ["Петров", "Петровский"]}
    patient.refresh_from_db()
    assert patient.search_name.startswith("петровский")


def test_update_without_changes_writes_no_audit_row(registrar):
    patient = PatientFactory(last_name="Петров")
    services.patient_update(
        actor=Actor(user=registrar), patient=patient, data={"last_name": "Петров"}
    )
    assert not AuditEvent.objects.filter(action="update").exists()


def test_soft_delete_hides_keeps_and_needs_a_reason(registrar):
    patient = PatientFactory()
    with pytest.raises(ValidationError):
        services.patient_soft_delete(actor=Actor(user=registrar), patient=patient, reason=" ")
    services.patient_soft_delete(actor=Actor(user=registrar), patient=patient, reason="duplicate")
    patient.refresh_from_db()
    assert patient.is_deleted and patient.deleted_by == registrar
    assert Patient.objects.alive().filter(pk=patient.pk).count() == 0
    assert AuditEvent.objects.get(action="delete", patient_id=patient.pk).reason == "duplicate"


def test_a_deleted_patient_cannot_be_edited_until_restored(registrar, administrator):
    patient = PatientFactory()
    services.patient_soft_delete(actor=Actor(user=registrar), patient=patient, reason="error")
    with pytest.raises(ValidationError, match="restore"):
        services.patient_update(actor=Actor(user=registrar), patient=patient, data={"notes": "x"})
    with pytest.raises(PermissionDenied):
        services.patient_restore(actor=Actor(user=registrar), patient=patient)
    services.patient_restore(actor=Actor(user=administrator), patient=patient)
    patient.refresh_from_db()
    assert not patient.is_deleted
    assert AuditEvent.objects.filter(action="restore", patient_id=patient.pk).exists()


def test_the_audit_row_names_the_patient_of_the_object(registrar):
    patient = services.patient_register(actor=Actor(user=registrar), data=_data())
    identifier_event = AuditEvent.objects.get(action="create", object_type="patients.patient")
    assert identifier_event.patient_id == patient.pk == patient.audit_patient_id


def test_an_identifier_lost_to_a_concurrent_writer_is_a_clear_error_not_a_500(registrar):
    # What a race past the pre-check looks like to the writer: the row already belongs to another
    # patient. The patient's own identifiers stay as they were.
    owner = PatientFactory(mrn="OWNER2")
    services.patient_update(
        actor=Actor(user=registrar),
        patient=owner,
        data={},
        identifiers=[IdentifierInput(type=identifier_type("snils"), value="11223344595")],
    )
    other = PatientFactory(mrn="OTHER2")
    services.patient_update(
        actor=Actor(user=registrar),
        patient=other,
        data={},
        identifiers=[IdentifierInput(type=identifier_type("oms"), value="7700000000000001")],
    )
    with pytest.raises(ValidationError, match="just given to another patient"):
        services._set_identifiers(
            other, [IdentifierInput(type=identifier_type("snils"), value="11223344595")]
        )
    assert list(other.identifiers.values_list("value", flat=True)) == ["7700000000000001"]
