"""Idempotency-Key on uploads: a retried upload replays the first answer, nothing twice."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import IdempotencyKey
from studies.models import Instance

from .conftest import dicom_bytes

pytestmark = pytest.mark.django_db

UPLOAD = "/api/v1/instances/"


def _post(api_client, data: bytes, key: str | None, name="a.dcm"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api_client.post(
        UPLOAD, {"file": [SimpleUploadedFile(name, data)]}, format="multipart", **headers
    )


def test_a_retried_upload_replays_the_first_answer(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    data = dicom_bytes()
    first = _post(api_client, data, "upload-1")
    again = _post(api_client, data, "upload-1")
    assert first.status_code == again.status_code == 200
    assert first.json()["counts"]["imported"] == 1
    # Without the key the retry would read "duplicate"; with it the client sees its own result.
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Instance.objects.count() == 1


def test_the_same_key_with_other_files_is_422(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    assert _post(api_client, dicom_bytes(), "k").status_code == 200
    other = dicom_bytes(SOPInstanceUID="1.2.826.0.1.3680043.10.999.1")
    response = _post(api_client, other, "k")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Instance.objects.count() == 1


def test_keys_belong_to_their_user(api_client, registrar, radiologist, patient):
    data = dicom_bytes()
    api_client.force_authenticate(registrar)
    assert _post(api_client, data, "shared-key").json()["counts"]["imported"] == 1
    api_client.force_authenticate(radiologist)
    response = _post(api_client, data, "shared-key")
    assert "Idempotent-Replayed" not in response
    assert response.json()["counts"]["duplicate"] == 1
    assert IdempotencyKey.objects.filter(key="shared-key").count() == 2


def test_a_too_long_key_is_a_400(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    response = _post(api_client, dicom_bytes(), "x" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["details"]
    assert not Instance.objects.exists()


def test_an_upload_still_running_is_409_with_retry_after(api_client, registrar, patient):
    """The first request's row exists without a response: a concurrent retry must wait."""
    api_client.force_authenticate(registrar)
    data = dicom_bytes()
    first = _post(api_client, data, "busy")
    IdempotencyKey.objects.filter(key="busy").update(completed_at=None, response_status=None)
    response = _post(api_client, data, "busy")
    assert first.status_code == 200
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    assert response["Retry-After"] == "1"
