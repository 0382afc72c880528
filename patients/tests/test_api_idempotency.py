"""Idempotency-Key on patient registration, merge and unmerge."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.idempotency import idempotency_purge
from accounts.models import AuditEvent, IdempotencyKey
from patients.models import Patient, PatientMerge
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NEW = {"last_name": "Ёлкина", "first_name": "Мария", "birth_date": "1990-01-02", "sex": "F"}


def test_a_retried_registration_creates_one_patient(api_client, registrar):
    api_client.force_authenticate(registrar)
    first = api_client.post("/api/v1/patients/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    again = api_client.post("/api/v1/patients/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert Patient.objects.count() == 1


def test_a_retried_merge_merges_once(api_client, registrar):
    survivor = PatientFactory(mrn="S1", last_name="Соколова")
    duplicate = PatientFactory(mrn="D1", last_name="Соколова")
    api_client.force_authenticate(registrar)
    url = f"/api/v1/patients/{survivor.pk}/merge/"
    body = {"duplicate": duplicate.pk, "reason": "twice"}
    first = api_client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="m1")
    merge_events = AuditEvent.objects.filter(action="merge").count()
    again = api_client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="m1")
    assert first.status_code == 200, first.json()
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert PatientMerge.objects.count() == 1
    assert merge_events > 0
    assert AuditEvent.objects.filter(action="merge").count() == merge_events
    # The same key for another merge is refused, not replayed.
    other = PatientFactory(mrn="D2", last_name="Соколова")
    refused = api_client.post(
        url, {"duplicate": other.pk, "reason": "twice"}, format="json", HTTP_IDEMPOTENCY_KEY="m1"
    )
    assert refused.status_code == 422
    assert PatientMerge.objects.count() == 1


def test_a_failed_validation_is_replayed_not_rerun(api_client, registrar):
    survivor = PatientFactory(mrn="S1")
    api_client.force_authenticate(registrar)
    url = f"/api/v1/patients/{survivor.pk}/merge/"
    first = api_client.post(url, {"reason": ""}, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    again = api_client.post(url, {"reason": ""}, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()


def test_expired_keys_run_again_and_are_purged(api_client, registrar):
    api_client.force_authenticate(registrar)
    api_client.post("/api/v1/patients/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    again = api_client.post(
        "/api/v1/patients/",
        {**NEW, "confirm_duplicate": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="old",
    )
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Patient.objects.count() == 2
    IdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    assert idempotency_purge() == 1
    assert not IdempotencyKey.objects.exists()
